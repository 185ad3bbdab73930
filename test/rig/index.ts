import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dockerdAlive, dockerdAnswers, removeAllContainers, spawnDockerd, stopDockerd, unmountUnder } from './dockerd.js';
import { withLock } from './lock.js';
import { registryAlive, spawnRegistry, stopRegistryProcess } from './registry.js';

export { freePort } from './proc.js';
export { startRegistry, type RegistryOptions } from './registry.js';

/** What integration tests need to reach the rig. */
export interface RigInfo {
  /** unix:///…/docker.sock, for DOCKER_HOST-style configuration. */
  dockerHost: string;
  /** The socket path, for `new Docker({ socketPath })`. */
  dockerSocket: string;
  /** 127.0.0.1:PORT, as used in image references. */
  registry: string;
  registryUrl: string;
  dir: string;
}

/** rig.json: the record that lets concurrent and later runs find and reuse a live rig. */
interface RigRecord extends RigInfo {
  dockerdPid: number;
  registryPid: number;
  startedBy: number;
  startedAt: string;
}

export interface Rig extends RigInfo {
  /** True when this process started the daemons (false: reused a live rig). */
  startedHere: boolean;
}

export function rigDir(): string {
  return resolve(process.env.BERTH_RIG_DIR ?? '/tmp/berth-rig');
}

const lockOf = (dir: string): string => `${dir}.lock`;
const leasesOf = (dir: string): string => join(dir, 'leases');

function readRecord(dir: string): RigRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'rig.json'), 'utf8')) as RigRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, record: RigRecord): void {
  // Write-then-rename: a reader never sees half a rig.json.
  const tmp = join(dir, `rig.json.${process.pid}`);
  writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n');
  renameSync(tmp, join(dir, 'rig.json'));
}

async function answers(r: RigRecord): Promise<boolean> {
  if (!(await dockerdAnswers(r.dockerSocket))) return false;
  const res = await fetch(`${r.registryUrl}/v2/`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  await res?.arrayBuffer();
  return res?.status === 200;
}

/**
 * Live = both recorded processes exist and answer. Other runs may be using a rig whose daemons are
 * merely slow (two cores, shared), so while the processes exist they get time to answer before
 * the rig is declared dead and torn down.
 */
async function recordIsLive(r: RigRecord): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!dockerdAlive(r.dockerdPid, r.dir) || !registryAlive({ pid: r.registryPid, dir: join(r.dir, 'registry') })) return false;
    if (await answers(r)) return true;
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}

/** Stops whatever a previous (dead or half-started) rig left, by the pids it recorded. */
async function tearDown(dir: string, r: RigRecord | undefined): Promise<void> {
  if (r) {
    if (dockerdAlive(r.dockerdPid, dir)) await removeAllContainers(r.dockerSocket).catch(() => 0);
    await stopDockerd(r.dockerdPid, dir);
    await stopRegistryProcess({ pid: r.registryPid, dir: join(dir, 'registry') });
  }
  await unmountUnder(dir);
}

function liveLeases(dir: string): number[] {
  let names: string[] = [];
  try {
    names = readdirSync(leasesOf(dir));
  } catch {
    return [];
  }
  return names.map(Number).filter((pid) => {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      rmSync(join(leasesOf(dir), String(pid)), { force: true });
      return false;
    }
  });
}

/**
 * Brings up the shared rig (private dockerd + CNCF registry on loopback) or reuses a live one.
 * Starts are serialized across processes by a lock; each user leaves a lease (its pid) so the rig
 * is only stopped when its last user is done.
 */
export async function startRig(opts: { dir?: string } = {}): Promise<Rig> {
  const dir = resolve(opts.dir ?? rigDir());
  return withLock(lockOf(dir), async () => {
    mkdirSync(dir, { recursive: true });
    const existing = readRecord(dir);
    let startedHere = false;
    let record: RigRecord;
    if (existing && (await recordIsLive(existing))) {
      record = existing;
    } else {
      await tearDown(dir, existing);
      rmSync(join(dir, 'rig.json'), { force: true });
      const dockerd = await spawnDockerd(dir);
      let registry;
      try {
        registry = await spawnRegistry(join(dir, 'registry'));
      } catch (err) {
        await stopDockerd(dockerd.pid, dir);
        throw err;
      }
      record = {
        dockerHost: `unix://${dockerd.socket}`,
        dockerSocket: dockerd.socket,
        registry: registry.registry,
        registryUrl: registry.registryUrl,
        dir,
        dockerdPid: dockerd.pid,
        registryPid: registry.pid,
        startedBy: process.pid,
        startedAt: new Date().toISOString(),
      };
      writeRecord(dir, record);
      startedHere = true;
    }
    mkdirSync(leasesOf(dir), { recursive: true });
    writeFileSync(join(leasesOf(dir), String(process.pid)), '');
    return { ...pickInfo(record), startedHere };
  });
}

function pickInfo(r: RigInfo): RigInfo {
  return { dockerHost: r.dockerHost, dockerSocket: r.dockerSocket, registry: r.registry, registryUrl: r.registryUrl, dir: r.dir };
}

/**
 * Releases this process's use of the rig. The daemons are stopped (containers removed first, then
 * each daemon by its recorded pid: SIGTERM, wait, SIGKILL; never by name) and the rig dir removed
 * only when no other live process still holds a lease and `keep` is off. `keep` (BERTH_RIG_KEEP=1
 * in the global setup) leaves the rig running so the next run skips the start-up.
 */
export async function stopRig(rig: RigInfo, opts: { keep?: boolean } = {}): Promise<{ stopped: boolean }> {
  const dir = rig.dir;
  return withLock(lockOf(dir), async () => {
    rmSync(join(leasesOf(dir), String(process.pid)), { force: true });
    if (opts.keep || liveLeases(dir).length > 0) return { stopped: false };
    await tearDown(dir, readRecord(dir));
    rmSync(dir, { recursive: true, force: true });
    return { stopped: true };
  });
}

const ENV = {
  dockerSocket: 'BERTH_RIG_DOCKER_SOCKET',
  registry: 'BERTH_RIG_REGISTRY',
  dir: 'BERTH_RIG_DIR',
} as const;

/** The variables the global setup exports so worker processes find the rig. */
/** Whether this process took a lease on the rig in `dir` (so it must release it with stopRig). */
export function holdsLease(dir: string = rigDir()): boolean {
  return existsSync(join(leasesOf(dir), String(process.pid)));
}

export function rigEnv(rig: RigInfo): Record<string, string> {
  return { [ENV.dockerSocket]: rig.dockerSocket, [ENV.registry]: rig.registry, [ENV.dir]: rig.dir };
}

/**
 * The rig as seen from inside a test file: from the variables the global setup exported, or else
 * from rig.json of a rig kept running (BERTH_RIG_KEEP=1), so a single file can also be run alone.
 */
export function rigFromEnv(): RigInfo {
  const socket = process.env[ENV.dockerSocket];
  const registry = process.env[ENV.registry];
  if (socket && registry) {
    return { dockerHost: `unix://${socket}`, dockerSocket: socket, registry, registryUrl: `http://${registry}`, dir: rigDir() };
  }
  const record = readRecord(rigDir());
  if (record) return pickInfo(record);
  throw new Error(
    `no test rig: ${ENV.dockerSocket}/${ENV.registry} are unset and ${join(rigDir(), 'rig.json')} does not exist; ` +
      'run integration tests through the vitest integration project (its global setup starts the rig)',
  );
}
