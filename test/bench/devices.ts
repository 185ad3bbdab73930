import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { publicKeyToRaw, signBytes } from '../../protocol/keys.js';
import { enrollProofBytes, type DeviceReport } from '../../protocol/device.js';

/**
 * Simulated devices for the control-plane benches. Keys are derived from (fleet, index), so the
 * bench that imports the manufacturing records and the simulator processes that enroll the devices
 * compute the same key pairs without passing 100,000 private keys around.
 */

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The private key from its 32-byte seed as a JWK: 0.10 ms against 0.62 ms for the same key from
 * PKCS#8 DER (Node 20's OpenSSL 3 decoder), which made key derivation most of the setup of the
 * enrollment and fleet-sim benches (0.9 ms a device; 20,000 derived twice per worker count).
 * Node builds an OKP private key from `d` alone and only checks that `x` is a string, so `x` is
 * left empty; checkDerivation (below, once a process) holds the two ways to the same key, so a
 * Node that starts reading `x` fails the bench loudly instead of enrolling wrong keys.
 */
function privateKeyOfSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: '' }, format: 'jwk' });
}

function checkDerivation(): void {
  const seed = createHash('sha256').update('berth-bench-derivation-check').digest();
  const viaDer = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  if (publicKeyToRaw(createPublicKey(viaDer)) !== publicKeyToRaw(createPublicKey(privateKeyOfSeed(seed)))) {
    throw new Error('test/bench/devices.ts: an Ed25519 key from its seed as JWK differs from the same seed as PKCS#8 (this Node reads the JWK differently); derive through PKCS#8 again');
  }
}
checkDerivation();

export interface SimDevice {
  serial: string;
  privateKey: KeyObject;
  publicKey: string;
}

export const serialOf = (fleet: string, i: number): string => `${fleet}-${String(i).padStart(6, '0')}`;

export function simDevice(fleet: string, i: number): SimDevice {
  const serial = serialOf(fleet, i);
  const seed = createHash('sha256').update(`berth-bench-device\n${serial}`).digest();
  const privateKey = privateKeyOfSeed(seed);
  return { serial, privateKey, publicKey: publicKeyToRaw(createPublicKey(privateKey)) };
}

/** Manufacturing records (CSV as the import route takes it) for devices [from, to). */
export function recordsCsv(fleet: string, from: number, to: number, labels: (i: number) => string): string {
  const lines = ['serial,public_key,labels'];
  for (let i = from; i < to; i++) {
    const d = simDevice(fleet, i);
    lines.push(`${d.serial},${d.publicKey},${labels(i)}`);
  }
  return lines.join('\n') + '\n';
}

async function post(base: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  }).catch((err: Error & { cause?: Error }) => {
    throw new Error(`POST ${path}: ${err.message}${err.cause ? ` (${err.cause.message})` : ''}`);
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    json = { text };
  }
  return { status: res.status, json };
}

export interface Enrolled {
  serial: string;
  deviceId: string;
  token: string;
  jwks: { keys: object[] };
}

/** Enrollment through the real routes: challenge, signature with the device key, enroll. */
export async function enrollDevice(base: string, d: SimDevice): Promise<Enrolled> {
  const ch = await post(base, '/v1/enroll/challenge', { serial: d.serial });
  if (ch.status !== 200) throw new Error(`challenge for ${d.serial}: ${ch.status} ${JSON.stringify(ch.json)}`);
  const challenge = ch.json.challenge as string;
  const r = await post(base, '/v1/enroll', { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) });
  if (r.status !== 200) throw new Error(`enroll ${d.serial}: ${r.status} ${JSON.stringify(r.json)}`);
  return { serial: d.serial, deviceId: r.json.deviceId as string, token: r.json.token as string, jwks: r.json.jwks as { keys: object[] } };
}

/** Runs `fn` over `items` with at most `limit` at once; results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

export { post as postJson };

/** A device report as the daemon sends it, for the release the document names. */
export function reportOf(fields: Pick<DeviceReport, 'sequence' | 'desiredSequence' | 'running' | 'phase'> & Partial<DeviceReport>): DeviceReport {
  return { bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString(), ...fields };
}
