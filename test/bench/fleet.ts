import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeKeyPair } from '../../protocol/keys.js';
import { createClient } from '@libsql/client';
import { forgeImage } from '../rig/forge.js';
import { recordsCsv, serialOf } from './devices.js';
import { operator, publish, startControlPlaneProcess, startProxyProcess, type ControlPlaneProcess, type ProxyProcess } from './services.js';

/**
 * A control plane (own process, embedded database) with a registry proxy for tag resolution and
 * one small app published in a few versions: what the control-plane benches and the simulator
 * run against.
 */
export interface FleetServer {
  cp: ControlPlaneProcess;
  proxy: ProxyProcess;
  /** name@version, in the order of `versions`. */
  releases: string[];
  stop(): Promise<void>;
}

export function appManifest(registry: string, repo: string, version: string): string {
  return ['name: fleet-app', `version: ${version}`, 'services:', '  app:', `    image: ${registry}/${repo}:${version}`, '    network_mode: none', ''].join('\n');
}

export async function startFleetServer(dir: string, rig: { registry: string; registryUrl: string }, versions: string[], cpEnv: Record<string, string> = {}, cpOpts: { bothLoopbacks?: boolean; workers?: number } = {}): Promise<FleetServer> {
  const repo = `bench/fleet-app-${process.pid}`;
  for (const v of versions) await forgeImage(rig.registry, repo, v, { layers: [{ files: { '/app/VERSION': `${v}\n` } }] });
  const proxy = await startProxyProcess(dir, rig.registryUrl);
  let cp: ControlPlaneProcess;
  try {
    cp = await startControlPlaneProcess(dir, { registryProxy: proxy.url, env: cpEnv, ...cpOpts });
  } catch (err) {
    await proxy.stop();
    throw err;
  }
  const stop = async () => {
    await cp.stop();
    await proxy.stop();
  };
  try {
    const releases: string[] = [];
    for (const v of versions) releases.push(await publish(cp, appManifest(rig.registry, repo, v)));
    return { cp, proxy, releases, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Imports the manufacturing records of devices [from, to) through the import route (one
 * transaction per request of `chunk` rows, as an operator would upload a big CSV); returns the
 * seconds the control plane took (key derivation in this process is not counted).
 */
export async function importFleet(cp: ControlPlaneProcess, fleet: string, from: number, to: number, chunk = 10_000, extraLabels: Record<string, string> = {}): Promise<number> {
  let seconds = 0;
  // Every chunk's CSV first (key derivation takes seconds per 10,000): sent back to back, no
  // request waits on a keep-alive connection the server has meanwhile closed as idle (EPIPE).
  const chunks: [number, string][] = [];
  for (let i = from; i < to; i += chunk) chunks.push([i, recordsCsv(fleet, i, Math.min(to, i + chunk), (n) => Object.entries({ ...labelsOf(n), ...extraLabels }).map(([k, v]) => `${k}=${v}`).join(';'))]);
  for (const [i, csv] of chunks) {
    const t0 = performance.now();
    const out = await operator(cp, 'POST', '/v1/devices/import', { text: csv, type: 'text/csv' });
    seconds += (performance.now() - t0) / 1000;
    if (Number(out.created) !== Math.min(to, i + chunk) - i) throw new Error(`import ${fleet} [${i}, ${Math.min(to, i + chunk)}): ${JSON.stringify(out).slice(0, 300)}`);
  }
  return seconds;
}

export const labelsOf = (n: number): Record<string, string> => ({ site: `s${n % 10}`, ring: `r${n % 4}` });

/**
 * Seeds devices [from, to) as already enrolled, straight into the database file (multi-row
 * INSERTs of 500 in one write transaction) while the control plane is stopped: enrolling 100,000
 * devices through the routes would take minutes and measure enrollment, not the fleet size. The
 * rows are what enrollment leaves (status enrolled, enrolled_at, a 32-byte public key in base64url)
 * except that the key is random bytes, not one derived from (fleet, index) as simDevice does: a
 * seeded device never enrolls or signs (only enrollment reads the key), and deriving them was
 * 0.5-0.65 ms each, 45 s of the control-plane entry at 100,000. Returns the seconds the inserts took.
 */
export async function seedEnrolledDevices(dbFile: string, fleet: string, from: number, to: number): Promise<number> {
  const client = createClient({ url: `file:${dbFile}`, timeout: 5000 } as Parameters<typeof createClient>[0]);
  try {
    const now = Date.now();
    const statements: { sql: string; args: (string | number)[] }[] = [];
    for (let i = from; i < to; i += 500) {
      const args: (string | number)[] = [];
      const end = Math.min(to, i + 500);
      for (let n = i; n < end; n++) {
        args.push('dev_' + randomBytes(9).toString('base64url'), serialOf(fleet, n), randomBytes(32).toString('base64url'), JSON.stringify(labelsOf(n)), 'enrolled', now, now, 0);
      }
      statements.push({ sql: `INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch) VALUES ${Array.from({ length: end - i }, () => '(?,?,?,?,?,?,?,?)').join(',')}`, args });
    }
    const t0 = performance.now();
    await client.batch(statements, 'write');
    return (performance.now() - t0) / 1000;
  } finally {
    client.close();
  }
}

export interface GatewayRecord {
  serial: string;
  keyFile: string;
}

/** Gateways with real key files (as `berth keygen` writes them), their records imported. */
export async function addGateways(server: FleetServer, dir: string, prefix: string, n: number, labels: string): Promise<GatewayRecord[]> {
  const out: GatewayRecord[] = [];
  const rows = ['serial,public_key,labels'];
  for (let i = 0; i < n; i++) {
    const serial = `${prefix}-${String(i).padStart(3, '0')}`;
    const keyFile = join(dir, 'gateways', serial, 'device.key');
    rows.push(`${serial},${await writeKeyPair(keyFile)},${labels}`);
    out.push({ serial, keyFile });
  }
  await operator(server.cp, 'POST', '/v1/devices/import', { text: rows.join('\n') + '\n', type: 'text/csv' });
  return out;
}

export async function deviceIdOf(server: FleetServer, serial: string): Promise<string> {
  return String((await operator(server.cp, 'GET', `/v1/devices/${serial}`)).id);
}
