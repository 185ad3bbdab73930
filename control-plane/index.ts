import type { RemoteBatches } from './cluster-batches.js';
import { dirname } from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadTls, serveHttp, type TlsFiles } from '../common/serve.js';
import { parseListenList } from '../common/listen.js';
import { loadTrust } from '../common/tls-trust.js';
import { createLogger, type Logger } from '../common/log.js';
import { buildApp } from './app.js';
import { bootstrap } from './operators/bootstrap.js';
import { createContext, type ControlPlaneConfig, type ControlPlaneContext } from './context.js';
import { migrate, openDatabase } from './db/open.js';
import { openPointReads } from './db/point-reads.js';
import type { WriteTurn } from './db/write-queue.js';
import type { AddressBudget } from './device-api/enroll-guard.js';
import { DesiredWaiters } from './devices/desired-waiters.js';
import { startFeedPruner, tailDesiredChanges } from './devices/change-feed.js';
import { startLease, whileHeld, type Lease, type LeaseOptions } from './lease.js';
import { watchSigningKeys } from './keys-watch.js';
import { TypedEmitter } from './events.js';
import { LastSeen, startLastSeenFlusher } from './devices/last-seen.js';
import { DeviceTokenCache } from './device-api/token-cache.js';
import { ControlPlaneMetrics } from './metrics.js';
import { mintPullToken } from './device-api/pull-tokens.js';
import { ImageRegistry } from './manifests/registry.js';
import { SigningKeys } from './signing-keys.js';
import { privateDatabaseFile, privateDir } from './secrets/file-modes.js';
import { KeyVault } from './secrets/key-vault.js';
import { startCampaignScheduler } from './campaigns/scheduler.js';
import { startDeltaPrecompute } from './campaigns/delta-precompute.js';
import { startWebhookDispatcher } from './webhooks/dispatcher.js';
import { startPresenceSweeper } from './webhooks/presence.js';
import { closeEnrollment } from './device-api/enrollment.js';
import { enrollDirect } from './device-api/enroll-direct.js';
import { desiredDirect } from './device-api/desired-direct.js';
import { reportDirect } from './device-api/report-direct.js';

export interface ControlPlaneOptions {
  /** HOST:PORT, or several comma-separated (`127.0.0.1:7600,[::1]:7600`); port 0 picks a free one. */
  listen?: string;
  /** Serve HTTPS from these PEM files (the key 0600); SIGHUP reloads them. */
  tls?: TlsFiles;
  /** The fleet's CA, trusted for an https: registry proxy (`--ca-file`). */
  caFile?: string;
  /** `file:` URL (embedded, WAL) or a libSQL server URL. */
  db: string;
  dbAuthToken?: string;
  registryProxy?: string | null;
  dataDir?: string;
  publicUrl?: string | null;
  /** Registered as an admin token instead of generating one (automation). */
  adminToken?: string;
  /** Encrypts the signing keys at rest (BERTH_SIGNING_KEY_SECRET); default: `<dataDir>/signing-key.secret`. */
  signingKeySecret?: string;
  config?: Partial<Omit<ControlPlaneConfig, 'registryProxy' | 'dataDir' | 'publicUrl'>>;
  log?: Logger;
  now?: () => Date;
  /** The singletons lease (lease.ts): ttl and renewal interval, this process's holder id. */
  lease?: LeaseOptions;
  /**
   * This process is worker `id` of `of` (`--workers`, cluster.ts): its answers carry
   * `X-Berth-Worker: id`.
   */
  worker?: { id: number; of: number };
  /** Turns to write, handed out by the primary of `--workers N` (cluster.ts). */
  writeTurn?: WriteTurn;
  /** The per-address enrollment budgets, kept by the primary of `--workers N` for all workers (enroll-budgets.ts). */
  enrollBudget?: AddressBudget;
  /** With `--workers N`: reports and enrollments handed to the writer process (cluster-batches.ts). */
  batches?: RemoteBatches;
}

export interface RunningControlPlane {
  /** The first `--listen` address's URL. */
  url: string;
  /** Every listened address's URL (`--listen A,B`), the first being `url`. */
  urls: string[];
  /** The admin token when this start created or was given it, or it is readable in the data dir. */
  adminToken?: string;
  adminTokenFile: string;
  ctx: ControlPlaneContext;
  /** The singletons lease: `held` says whether this process drives campaigns, dispatches webhooks, sweeps presence. */
  lease: Lease;
  close(): Promise<void>;
}

export const DEFAULTS: Omit<ControlPlaneConfig, 'registryProxy' | 'dataDir' | 'publicUrl'> = {
  offlineAfterMs: 120_000,
  documentTtlSec: 24 * 3600,
  deviceTokenTtlSec: 3600,
  pullTokenTtlSec: 15 * 60,
  operatorPullTokenTtlSec: 15 * 60,
  challengeTtlMs: 5 * 60_000,
  maxWaitSec: 60,
  feedTickMs: 250,
  reportHistoryLimit: 50,
  lastSeenFlushMs: 5000,
  deviceTokenCacheSize: 200_000,
  enrollBurst: 240,
  enrollPerSecond: 2,
  refusalAuditWindowMs: 60_000,
};

function filePathOf(url: string): string | null {
  if (!url.startsWith('file:')) return null;
  let p = url.slice('file:'.length).split('?')[0];
  if (p.startsWith('//')) p = p.slice(p.indexOf('/', 2));
  return decodeURIComponent(p);
}

/** Starts the control plane in this process (tests, the demo) or for `berth control-plane`. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = opts.log ?? createLogger('control-plane');
  // A bad --listen, a key readable by others or a pair that does not match stops the start before anything is opened.
  const listen = opts.listen ?? '127.0.0.1:7600';
  parseListenList(listen);
  if (opts.tls) await loadTls(opts.tls);
  const dbFile = filePathOf(opts.db);
  const dataDir = opts.dataDir ?? (dbFile ? dirname(dbFile) : './data');
  // The data dir holds the database, the key secret and admin.token: only this user may read them.
  await privateDir(dataDir, log);
  if (dbFile) await privateDir(dirname(dbFile), log);
  if (dbFile) await privateDatabaseFile(dbFile, log);
  const registryProxy = opts.registryProxy ? opts.registryProxy.replace(/\/+$/, '') : null;
  const config: ControlPlaneConfig = { ...DEFAULTS, ...opts.config, registryProxy, dataDir, publicUrl: opts.publicUrl ?? null, deviceClientCerts: Boolean(opts.tls?.clientCaFile) };
  const { client, db } = await openDatabase(opts.db, { authToken: opts.dbAuthToken });
  try {
    await migrate(client, log);
  } catch (err) {
    client.close();
    throw err;
  }
  // After the migrations: its statements name tables they create.
  const reads = openPointReads(opts.db, client);
  const vault = await KeyVault.open(dataDir, opts.signingKeySecret, log);
  const keys = new SigningKeys(db, Math.max(config.documentTtlSec, config.deviceTokenTtlSec, config.pullTokenTtlSec) * 1000, vault);
  await keys.sealPlaintext(client, log, dbFile !== null);
  await keys.load();
  const now = opts.now ?? (() => new Date());
  const proxyTrust = opts.caFile ? await loadTrust(opts.caFile) : undefined;
  const registry = new ImageRegistry(registryProxy, async (access) => (await mintPullToken(keys, 'control-plane', access, 300, now())).token, log, undefined, proxyTrust);
  const ctx = createContext({ db, client, reads, log, events: new TypedEmitter(), config, keys, waiters: new DesiredWaiters(), registry, seen: new LastSeen(), deviceTokens: new DeviceTokenCache(config.deviceTokenCacheSize), vault, now, writeTurn: opts.writeTurn, enrollBudget: opts.enrollBudget, batches: opts.batches });
  const boot = await bootstrap(ctx, opts.adminToken);

  // Every process: the change feed (wakes its own long polls), keys rotated or revoked elsewhere, its sightings, its devices' campaign
  // events, and the deltas of the campaigns created through it (each is created in one process only).
  const stops: (() => void)[] = [tailDesiredChanges(ctx, { tickMs: config.feedTickMs }).stop, watchSigningKeys(ctx).stop];
  const seenFlusher = startLastSeenFlusher(ctx, config.lastSeenFlushMs);
  // One process among those sharing the database (the lease holder): driving campaigns and the other singletons.
  const lease = startLease(ctx, 'singletons', opts.lease);
  const scheduler = startCampaignScheduler(ctx, { drives: () => lease.held });
  stops.push(scheduler.stop, startDeltaPrecompute(ctx).stop);
  stops.push(whileHeld(lease, () => [startWebhookDispatcher(ctx), startPresenceSweeper(ctx), startFeedPruner(ctx)]));

  const metrics = new ControlPlaneMetrics();
  metrics.gauge('berth_cp_lease_held', () => (lease.held ? 1 : 0));
  metrics.gauge('berth_cp_campaign_ticks', () => scheduler.driven.ticks);
  const app = buildApp(ctx, metrics);
  // The hottest routes on node:http ahead of the Hono adapter (issue 17): polls first, the bulk of the traffic, then reports.
  const direct = { metrics, workerId: opts.worker?.id };
  const [polls, reports, enrollments] = [desiredDirect(ctx, direct), reportDirect(ctx, direct), enrollDirect(ctx, direct)];
  let served;
  try {
    served = await serveHttp({ fetch: withWorkerHeader(app.fetch, opts.worker?.id), direct: (req, res) => polls(req, res) || reports(req, res) || enrollments(req, res), listen, tls: opts.tls, log });
  } catch (err) {
    for (const stop of stops) stop();
    await lease.release();
    await seenFlusher.stop().catch(() => undefined);
    reads.close();
    client.close();
    throw err;
  }
  const { url, urls } = served;
  if (!config.publicUrl) config.publicUrl = url;
  log.info({ url, ...(urls.length > 1 ? { urls } : {}), db: dbFile ? `file:${dbFile}` : opts.db.replace(/\?.*$/, ''), registryProxy, dataDir }, 'control plane listening');

  let closed: Promise<void> | null = null;
  return {
    url,
    urls,
    adminToken: boot.adminToken,
    adminTokenFile: boot.adminTokenFile,
    ctx,
    lease,
    close() {
      closed ??= (async () => {
        for (const stop of stops) stop();
        served.dispose();
        ctx.waiters.close();
        // Long polls were just woken; anything still open after a grace period is cut.
        await served.close(2000);
        // Writes the last sightings, and waits for in-flight writes: a transaction is never cut by shutdown.
        await seenFlusher.stop().catch((err: unknown) => log.warn({ err }, 'last-seen flush at shutdown failed'));
        await closeEnrollment(ctx);
        // Given up, not left to expire: another control plane takes the singletons over at once.
        await lease.release();
        await ctx.write(async () => undefined);
        reads.close();
        client.close();
        log.info('control plane stopped');
      })();
      return closed;
    },
  };
}

/** Marks each answer with the worker that made it (`--workers`), so tests and operators see the spread. */
function withWorkerHeader<F extends (req: Request, ...rest: never[]) => Response | Promise<Response>>(fetch: F, workerId: number | undefined): F {
  if (workerId === undefined) return fetch;
  const id = String(workerId);
  return (async (req: Request, ...rest: never[]) => {
    const res = await fetch(req, ...rest);
    try {
      res.headers.set('x-berth-worker', id);
    } catch {
      // An answer with immutable headers (a redirect made by Response.redirect) goes out unmarked.
    }
    return res;
  }) as F;
}
