import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processAlive, spawnDetached, terminate, waitUntil } from './proc.js';

export const DOCKERD_BIN = process.env.BERTH_RIG_DOCKERD_BIN ?? '/usr/sbin/dockerd';

export interface DockerdPaths {
  dataRoot: string;
  /** Kept short: containerd puts unix sockets under it and sun_path is limited to 108 bytes. */
  execRoot: string;
  socket: string;
  pidfile: string;
  log: string;
}

export function dockerdPaths(dir: string): DockerdPaths {
  const paths = {
    dataRoot: join(dir, 'docker'),
    execRoot: join(dir, 'x'),
    socket: join(dir, 'docker.sock'),
    pidfile: join(dir, 'dockerd.pid'),
    log: join(dir, 'dockerd.log'),
  };
  const longest = join(paths.execRoot, 'containerd', 'containerd.sock.ttrpc');
  if (longest.length > 100) {
    throw new Error(`rig dir ${dir} is too long for unix sockets (${longest} > 100 bytes); set BERTH_RIG_DIR to a shorter path`);
  }
  return paths;
}

/** One request to the Engine API over its unix socket; enough for ping and cleanup. */
export function engineRequest(socket: string, method: string, path: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { host: 'docker' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} on ${socket} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function dockerdAnswers(socket: string): Promise<boolean> {
  const res = await engineRequest(socket, 'GET', '/_ping', 2000).catch(() => undefined);
  return res?.status === 200 && res.body === 'OK';
}

/**
 * Starts a private dockerd. Sandbox findings (Debian 12 docker.io 20.10, this VM):
 * - overlay2 works on the ext4 root (d_type supported), so no storage-driver override: vfs would
 *   copy every layer per container and make big-layer tests slow;
 * - cgroup v1 with the cgroupfs driver works as is (no systemd here);
 * - no default bridge, no iptables/ip6tables: the rig must not alter the machine's firewall.
 *   User-defined bridge networks still work (containers of one network reach each other, with
 *   the engine's DNS), and published ports go through the userland proxy (docker-proxy), which
 *   needs no firewall rule; tests publish on 127.0.0.1 only;
 * - dockerd manages its own containerd under the exec root.
 */
export async function spawnDockerd(dir: string): Promise<{ pid: number; socket: string }> {
  const p = dockerdPaths(dir);
  mkdirSync(p.dataRoot, { recursive: true });
  mkdirSync(p.execRoot, { recursive: true });
  const args = [
    `--data-root=${p.dataRoot}`,
    `--exec-root=${p.execRoot}`,
    `--host=unix://${p.socket}`,
    `--pidfile=${p.pidfile}`,
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    // A private config dir: no daemon.json from the machine can change the rig.
    `--config-file=${join(dir, 'daemon.json')}`,
  ];
  writeFileSync(join(dir, 'daemon.json'), '{}\n');
  const child = spawnDetached(DOCKERD_BIN, args, p.log);
  await waitUntil(`dockerd ${DOCKERD_BIN} on ${p.socket}`, () => dockerdAnswers(p.socket), {
    timeoutMs: 60_000,
    exited: child.exited,
    log: p.log,
  });
  return { pid: child.pid, socket: p.socket };
}

export function dockerdAlive(pid: number, dir: string): boolean {
  return processAlive(pid, dockerdPaths(dir).dataRoot);
}

/** Force-removes every container of this (private) engine, with its anonymous volumes. */
export async function removeAllContainers(socket: string): Promise<number> {
  const list = await engineRequest(socket, 'GET', '/containers/json?all=1');
  if (list.status !== 200) throw new Error(`listing containers on ${socket}: HTTP ${list.status} ${list.body}`);
  const ids = (JSON.parse(list.body) as { Id: string }[]).map((c) => c.Id);
  for (const id of ids) await engineRequest(socket, 'DELETE', `/containers/${id}?force=1&v=1`, 30_000);
  return ids.length;
}

/**
 * Stops dockerd by pid, then its managed containerd if a SIGKILL left it orphaned, then lifts the
 * mounts dockerd leaves behind (it keeps exec-root/netns/default mounted after exit), so the rig
 * dir can be removed.
 */
export async function stopDockerd(pid: number, dir: string): Promise<void> {
  const p = dockerdPaths(dir);
  await terminate(pid, p.dataRoot, 20_000);
  const containerdPid = Number(readFileOr(join(p.execRoot, 'containerd', 'containerd.pid')));
  await terminate(containerdPid, p.execRoot, 5000);
  await unmountUnder(dir);
}

const run = promisify(execFile);

export async function unmountUnder(dir: string): Promise<void> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const mounts = readFileOr('/proc/self/mountinfo')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(prefix))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
}

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
