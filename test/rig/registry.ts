import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, processAlive, spawnDetached, terminate, waitUntil } from './proc.js';

export const REGISTRY_BIN = process.env.BERTH_RIG_REGISTRY_BIN ?? '/usr/bin/docker-registry';

export interface RegistryOptions {
  /** Basic auth with one user (bcrypt htpasswd file). */
  htpasswd?: { user: string; password: string };
  /** Bearer-token auth: the registry answers 401 with a challenge naming `realm`, `service`. */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

export interface RunningRegistry {
  /** host:port, as used in image references. */
  registry: string;
  registryUrl: string;
  pid: number;
  /** Where the config, storage and log live. */
  dir: string;
  log: string;
}

/**
 * The registry config. YAML is a superset of JSON, so the config is written as JSON: no YAML
 * emitter needed and no quoting surprises.
 */
async function registryConfig(dir: string, port: number, opts: RegistryOptions): Promise<object> {
  let auth: object | undefined;
  if (opts.htpasswd) {
    // Loaded only here: bcryptjs is a dev dependency and the demo imports this tree from dist.
    const bcrypt = (await import('bcryptjs')).default;
    const line = `${opts.htpasswd.user}:${bcrypt.hashSync(opts.htpasswd.password, 8)}\n`;
    writeFileSync(join(dir, 'htpasswd'), line, { mode: 0o600 });
    auth = { htpasswd: { realm: 'berth-test', path: join(dir, 'htpasswd') } };
  } else if (opts.tokenAuth) {
    const t = opts.tokenAuth;
    auth = { token: { realm: t.realm, service: t.service, issuer: t.issuer, rootcertbundle: t.rootCertBundle } };
  }
  return {
    version: 0.1,
    log: { level: 'info', accesslog: { disabled: true }, fields: { service: 'registry' } },
    storage: {
      filesystem: { rootdirectory: join(dir, 'data') },
      delete: { enabled: true },
      // Upload purging would delete in-flight uploads of slow tests; nothing here lives that long.
      maintenance: { uploadpurging: { enabled: false } },
      cache: { blobdescriptor: 'inmemory' },
    },
    http: { addr: `127.0.0.1:${port}`, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    health: { storagedriver: { enabled: false } },
    ...(auth ? { auth } : {}),
  };
}

/**
 * Starts the CNCF distribution registry in `dir` on a free loopback port and waits for /v2/.
 * Retries with another port when the picked one was taken in between (concurrent test runs).
 */
export async function spawnRegistry(dir: string, opts: RegistryOptions = {}): Promise<RunningRegistry> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const configPath = join(dir, 'config.yml');
  const log = join(dir, 'registry.log');
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    writeFileSync(configPath, JSON.stringify(await registryConfig(dir, port, opts), null, 2));
    // The registry reads REGISTRY_* variables as config overrides; keep the caller's out of it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
    const child = spawnDetached(REGISTRY_BIN, ['serve', configPath], log, env);
    const registryUrl = `http://127.0.0.1:${port}`;
    try {
      await waitUntil(
        `registry ${REGISTRY_BIN} on 127.0.0.1:${port}`,
        async () => {
          // Answers 200 without auth, 401 with a challenge when auth is on; both mean it is up.
          const res = await fetch(`${registryUrl}/v2/`, { signal: AbortSignal.timeout(2000) });
          await res.arrayBuffer();
          return res.status === 200 || res.status === 401;
        },
        { timeoutMs: 30_000, exited: child.exited, log },
      );
      return { registry: `127.0.0.1:${port}`, registryUrl, pid: child.pid, dir, log };
    } catch (err) {
      lastError = err;
      await terminate(child.pid, configPath, 3000);
      if (!/address already in use/.test(logTail(log, 5))) break;
    }
  }
  throw lastError;
}

export function registryAlive(reg: { pid: number; dir: string }): boolean {
  return processAlive(reg.pid, join(reg.dir, 'config.yml'));
}

export async function stopRegistryProcess(reg: { pid: number; dir: string }): Promise<void> {
  await terminate(reg.pid, join(reg.dir, 'config.yml'), 5000);
}

/**
 * An extra, private registry for one test (auth variants for the registry proxy). Its storage
 * lives in a fresh temp dir that stop() removes.
 */
export async function startRegistry(
  opts: RegistryOptions = {},
): Promise<{ registry: string; registryUrl: string; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
  let running: RunningRegistry;
  try {
    running = await spawnRegistry(dir, opts);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // The registry is detached; if the test process dies without stop(), do not leave it behind.
  const onExit = (): void => {
    try {
      process.kill(running.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);
  return {
    registry: running.registry,
    registryUrl: running.registryUrl,
    dir,
    async stop() {
      process.removeListener('exit', onExit);
      await stopRegistryProcess(running);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
