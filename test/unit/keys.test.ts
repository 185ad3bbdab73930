import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateEd25519, importPrivateKey, importPublicKey, loadPrivateKey, publicKeyToRaw, rawOkpPublicKey, signBytes, verifyBytes, writeKeyPair } from '../../protocol/keys.js';

describe('public key import', () => {
  const pair = generateEd25519();
  const raw = publicKeyToRaw(pair.publicKey);

  it('exports the 32 raw bytes as 43 base64url characters (the JWK x)', () => {
    expect(raw).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(raw, 'base64url')).toHaveLength(32);
    expect(pair.publicKey.export({ format: 'jwk' }).x).toBe(raw);
  });
  it('imports raw and PEM forms to the same key', () => {
    const pem = pair.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    expect(publicKeyToRaw(importPublicKey(raw))).toBe(raw);
    expect(publicKeyToRaw(importPublicKey(`\n${pem}\n`))).toBe(raw);
  });
  it('refuses bad keys naming what is wrong', () => {
    expect(() => importPublicKey('abc')).toThrow(/43 base64url characters/);
    expect(() => importPublicKey(raw + 'A')).toThrow(/43 base64url characters/);
    expect(() => importPublicKey(Buffer.alloc(32).toString('base64'))).toThrow(/43 base64url|base64url/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(() => importPublicKey(rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string)).toThrow(/is rsa, expected ed25519/);
    expect(() => importPublicKey('-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----')).toThrow();
  });
  it('refuses non-Ed25519 private keys', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => importPrivateKey(ec.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)).toThrow(/is ec, expected ed25519/);
  });
});

describe('signatures', () => {
  const pair = generateEd25519();
  it('verifies what was signed and nothing else', () => {
    const sig = signBytes(pair.privateKey, 'berth-enroll-v1\nSN1\nchallenge');
    expect(verifyBytes(importPublicKey(publicKeyToRaw(pair.publicKey)), 'berth-enroll-v1\nSN1\nchallenge', sig)).toBe(true);
    expect(verifyBytes(pair.publicKey, 'berth-enroll-v1\nSN2\nchallenge', sig)).toBe(false);
    expect(verifyBytes(generateEd25519().publicKey, 'berth-enroll-v1\nSN1\nchallenge', sig)).toBe(false);
    expect(verifyBytes(pair.publicKey, 'x', 'not-a-signature')).toBe(false);
  });
});

describe('writeKeyPair', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-keys-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes FILE 0600 and FILE.pub, returning the raw public key', async () => {
    const file = join(dir, 'sub', 'device.key');
    const raw = await writeKeyPair(file);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const priv = await loadPrivateKey(file);
    const pub = importPublicKey(await readFile(file + '.pub', 'utf8'));
    expect(publicKeyToRaw(pub)).toBe(raw);
    expect(verifyBytes(pub, 'm', signBytes(priv, 'm'))).toBe(true);
  });
  it('refuses to overwrite an existing private key', async () => {
    const file = join(dir, 'k');
    await writeFile(file, 'precious');
    await expect(writeKeyPair(file)).rejects.toThrow(/EEXIST/);
    expect(await readFile(file, 'utf8')).toBe('precious');
  });
  it('refuses to overwrite an existing public key and leaves no private key behind', async () => {
    const file = join(dir, 'k');
    await writeFile(file + '.pub', 'precious');
    await expect(writeKeyPair(file)).rejects.toThrow(/EEXIST/);
    expect(await readFile(file + '.pub', 'utf8')).toBe('precious');
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });
});

describe('raw OKP public keys', () => {
  it('are the JWK x of Ed25519 and X25519 keys, read from the SPKI instead of a JWK export', () => {
    for (const type of ['ed25519', 'x25519'] as const) {
      const { publicKey } = generateKeyPairSync(type as 'ed25519');
      expect(rawOkpPublicKey(publicKey, type)).toBe(publicKey.export({ format: 'jwk' }).x);
    }
  });

  it('refuses a key of another type or a private key, naming what was expected', () => {
    const ed = generateKeyPairSync('ed25519');
    expect(() => rawOkpPublicKey(ed.publicKey, 'x25519')).toThrow('not an X25519 public key');
    expect(() => publicKeyToRaw(ed.privateKey)).toThrow('not an Ed25519 public key');
  });
});
