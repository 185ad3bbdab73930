import type { KeyObject } from 'node:crypto';
import { generateEd25519, publicKeyToRaw, signBytes } from '../../protocol/keys.js';
import { enrollProofBytes } from '../../protocol/device.js';

/** Test-side clients of the control plane's HTTP API, as an operator or a device would call it. */

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export async function call<T = any>(base: string, method: string, path: string, opts: { token?: string; json?: unknown; text?: string; type?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  } else if (opts.text !== undefined) {
    body = opts.text;
    headers['content-type'] = opts.type ?? 'text/plain';
  }
  const res = await fetch(base + path, { method, headers, body, signal: opts.signal });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (metrics); keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

export interface TestDevice {
  serial: string;
  privateKey: KeyObject;
  publicKey: string;
}

export function newDevice(serial: string): TestDevice {
  const pair = generateEd25519();
  return { serial, privateKey: pair.privateKey, publicKey: publicKeyToRaw(pair.publicKey) };
}

export async function challengeFor(base: string, serial: string): Promise<string> {
  const r = await call(base, 'POST', '/v1/enroll/challenge', { json: { serial } });
  if (r.status !== 200) throw new Error(`challenge for ${serial}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.challenge as string;
}

export async function enrollWith(base: string, serial: string, challenge: string, key: KeyObject): Promise<Answer> {
  return call(base, 'POST', '/v1/enroll', { json: { serial, challenge, signature: signBytes(key, enrollProofBytes(serial, challenge)) } });
}

/** Full enrollment; throws unless it succeeds. */
export async function enroll(base: string, d: TestDevice): Promise<{ deviceId: string; token: string; jwks: { keys: object[] } }> {
  const r = await enrollWith(base, d.serial, await challengeFor(base, d.serial), d.privateKey);
  if (r.status !== 200) throw new Error(`enroll ${d.serial}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export function csvOf(devices: TestDevice[], labels: (d: TestDevice) => string = () => ''): string {
  return ['serial,public_key,labels', ...devices.map((d) => `${d.serial},${d.publicKey},${labels(d)}`)].join('\n') + '\n';
}

export function jwtPayload(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

export function jwtHeader(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
}

/**
 * The error a campaign reports for one device once it lists it among its failing devices (a late
 * joiner is judged asynchronously); undefined if it is not listed within about 20 s.
 */
export async function failingError(base: string, campaignId: string, serial: string, token: string): Promise<string | null | undefined> {
  for (let i = 0; i < 100; i++) {
    const status = (await call<{ failing: { serial: string; error: string | null }[] }>(base, 'GET', `/v1/campaigns/${campaignId}`, { token })).body;
    const entry = status.failing.find((f) => f.serial === serial);
    if (entry) return entry.error;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}
