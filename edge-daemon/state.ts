import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../common/atomic-file.js';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { encryptionKeyToRaw } from '../protocol/secret-box.js';
import type { Release } from './reconcile/spec.js';

/**
 * The state dir: everything a daemon must remember across a restart or a power cut. Every file is
 * written whole (temp + fsync + rename + directory fsync) and 0600, so after a crash a file is either
 * the old version or the new one, never half of each.
 *
 *   credentials.json  device id, token, pinned JWKS, registry proxy URL (secret: 0600)
 *   release.json      the journal: current, previous, in-flight swap, last accepted sequence
 *   report.json       the last report sequence used (reports stay strictly increasing across restarts)
 *   encryption-key.pem  the device's X25519 private key that its secrets are encrypted to (secret: 0600)
 *   download/         the download channel's own store (see download/README.md)
 */
/** State files hold secrets (the device token) and journals: whole-or-nothing writes, 0600. */
export function writeAtomic(path: string, data: string): Promise<void> {
  return writeFileAtomic(path, data, { mode: 0o600 });
}

async function readJson<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`state file ${path} is not JSON; remove it to start over`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`state file ${path} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export const credentialsSchema = z.object({
  deviceId: z.string().min(1),
  serial: z.string(),
  token: z.string(),
  tokenExpiresAt: z.string(),
  registryProxy: z.string().nullable(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }),
  controlPlane: z.string(),
  /** The encryption key (base64url raw X25519) the control plane last accepted with these credentials. */
  encryptionKey: z.string().optional(),
});
export type Credentials = z.infer<typeof credentialsSchema>;

const releaseSchema = z.object({
  sequence: z.number().int().nonnegative(),
  name: z.string(),
  version: z.string(),
  digest: z.string(),
  spec: z.object({ name: z.string(), version: z.string(), services: z.record(z.string(), z.unknown()) }).passthrough(),
  /** Encrypted (JWEs to this device's key): a restart decrypts them again onto tmpfs. */
  secrets: z.record(z.string(), z.object({ ref: z.string(), jwe: z.string() })).optional(),
});

const journalSchema = z.object({
  current: releaseSchema.nullable(),
  previous: releaseSchema.nullable(),
  /** A swap under way: on restart it is finished (healthy) or rolled back, never left half done. */
  inflight: z
    .object({
      target: releaseSchema,
      step: z.number().int(),
      kind: z.string(),
      rollingBack: z.boolean(),
      /** Why it is rolling back and how that ends (rolled-back: wait for a newer release; failed: retry it). */
      rollback: z.object({ phase: z.enum(['rolled-back', 'failed']), reason: z.string() }).optional(),
      startedAt: z.string(),
    })
    .nullable(),
  /** Highest sequence accepted for apply (committed, or tried and rolled back): nothing at or below it applies again. */
  lastSequence: z.number().int().nullable(),
  /** The last failure, kept so a restarted daemon reports it until a newer document arrives. */
  failure: z.object({ sequence: z.number().int(), phase: z.enum(['rolled-back', 'failed']), error: z.string() }).nullable(),
});

export interface Journal {
  current: Release | null;
  previous: Release | null;
  inflight: {
    target: Release;
    step: number;
    kind: string;
    rollingBack: boolean;
    rollback?: { phase: 'rolled-back' | 'failed'; reason: string };
    startedAt: string;
  } | null;
  lastSequence: number | null;
  failure: { sequence: number; phase: 'rolled-back' | 'failed'; error: string } | null;
}

export const EMPTY_JOURNAL: Journal = { current: null, previous: null, inflight: null, lastSequence: null, failure: null };

export class StateDir {
  constructor(readonly dir: string) {}

  path(name: string): string {
    return join(this.dir, name);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  loadCredentials(): Promise<Credentials | undefined> {
    return readJson(this.path('credentials.json'), credentialsSchema);
  }

  saveCredentials(c: Credentials): Promise<void> {
    return writeAtomic(this.path('credentials.json'), JSON.stringify(c, null, 2) + '\n');
  }

  async loadJournal(): Promise<Journal> {
    // The schema checks the shape; the release specs were verified when their documents were.
    return ((await readJson(this.path('release.json'), journalSchema)) as Journal | undefined) ?? { ...EMPTY_JOURNAL };
  }

  saveJournal(j: Journal): Promise<void> {
    return writeAtomic(this.path('release.json'), JSON.stringify(j) + '\n');
  }

  /** The device's X25519 key pair, created on first use: generated here, never leaves the gateway. */
  async encryptionKey(): Promise<{ privateKey: KeyObject; publicKey: string }> {
    const path = this.path('encryption-key.pem');
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      pem = generateKeyPairSync('x25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      await writeAtomic(path, pem);
    }
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'x25519') throw new Error(`${path} is not an X25519 private key; remove it to have a new one made (the device then registers it at its next enrollment)`);
    return { privateKey, publicKey: encryptionKeyToRaw(createPublicKey(privateKey)) };
  }

  async loadReportSequence(): Promise<number> {
    return (await readJson(this.path('report.json'), z.object({ sequence: z.number().int().nonnegative() })))?.sequence ?? 0;
  }

  saveReportSequence(sequence: number): Promise<void> {
    return writeAtomic(this.path('report.json'), JSON.stringify({ sequence }) + '\n');
  }
}
