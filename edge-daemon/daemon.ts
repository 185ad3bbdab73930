import { EngineClient } from './engine/client.js';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { retry } from '../common/backoff.js';
import { SerialQueue } from '../common/serial-queue.js';
import { createLogger } from '../common/log.js';
import type { Logger } from './gateway-log.js';
import type { VerifyOptions } from '../protocol/deployment.js';
import { importPublicKey, loadPrivateKey } from '../protocol/keys.js';
import { type DaemonStatus, type EdgeDaemon, type EdgeDaemonOptions } from './daemon-api.js';
import { retryAfterOf } from './control.js';
import { controlChannelBackoff, DeviceIdentity } from './identity.js';
import type { FetcherFactory, ImageFetcher } from './images.js';
import { readDocument, type ReadDocument } from './policy/accept.js';
import { SecretFiles } from './secrets/files.js';
import { DEFAULT_SECRETS_ROOT } from './secrets/mounts.js';
import { loadCeiling, withinCeiling } from './reconcile/ceiling.js';
import type { Allowance } from '../manifests/privileges.js';
import { ReleaseRunner } from './release-runner.js';
import { releaseLabel } from './reconcile/spec.js';
import { Reporter, type ReportBody } from './report.js';
import { reportedServices } from './reported.js';
import { LogShipper } from './logs/shipper.js';
import { StateDir } from './state.js';
import type { HttpsTrust } from '../common/tls-trust.js';
import { hostPlatform } from '../common/oci.js';

export type { DaemonStatus, EdgeDaemon, EdgeDaemonOptions } from './daemon-api.js';

/**
 * One gateway daemon: enrolls, long-polls its desired state, and hands each document and each
 * reconcile tick to the release runner (policy in `policy/`, effects in `reconcile/`); reports.
 * Built from its options alone (no module state), so several run side by side in one process.
 */
class Daemon implements EdgeDaemon {
  deviceId = '';
  private identity!: DeviceIdentity;
  private trust: KeyObject | undefined;
  private ceiling: Allowance | undefined;
  /** The fleet's CA (and the device's client certificate) for https: URLs. */
  private https: HttpsTrust | undefined;
  private docker!: EngineClient;
  private reporter!: Reporter;
  private runner: ReleaseRunner | undefined;
  private secrets!: SecretFiles;
  private fetcherPromise: Promise<ImageFetcher> | undefined;
  private readonly abort = new AbortController();
  /** Documents and reconcile ticks, one at a time: a swap never overlaps another or a repair. */
  private readonly work = new SerialQueue({
    signal: this.abort.signal,
    onError: (err, job, stopped) => {
      if (!stopped) this.log.error({ err, job }, 'daemon work failed');
    },
  });
  private tickQueued = false;
  private pendingDocument: string | undefined;
  private lastDocument: string | undefined;
  /** Set after a document was refused for an unknown key and the keys were renewed: fetch it again. */
  private refetch = false;
  private seen = { sequence: null as number | null, count: 0 };
  private timers: NodeJS.Timeout[] = [];
  private loops: Promise<void>[] = [];
  private readonly log: Logger;
  private readonly state: StateDir;
  /** Container logs on demand (issue 15), shipped when a poll answer says an operator asks. */
  private logs: LogShipper | undefined;

  constructor(private readonly opts: EdgeDaemonOptions) {
    // Stops a start that is still enrolling (retrying an unreachable or untrusted control plane).
    opts.signal?.addEventListener('abort', () => this.abort.abort(), { once: true });
    this.log = opts.log ?? createLogger('edge-daemon');
    this.state = new StateDir(opts.stateDir);
  }

  async start(): Promise<void> {
    await this.state.init();
    const key = typeof this.opts.key === 'string' ? await loadPrivateKey(this.opts.key) : this.opts.key;
    if (this.opts.trustKey) {
      this.trust = importPublicKey(await readFile(this.opts.trustKey, 'utf8'));
    }
    const ceiling = this.opts.allow ? await loadCeiling(this.opts.allow) : undefined;
    // One trust for the control and download channels; a client certificate rides along when given.
    const client = this.opts.tlsClientCert && this.opts.tlsClientKey ? { certFile: this.opts.tlsClientCert, keyFile: this.opts.tlsClientKey } : undefined;
    // Loaded only when asked for: node:https stays out of a plain-HTTP daemon's memory.
    this.https = this.opts.caFile || client ? await (await import('../common/tls-trust.js')).loadTrust(this.opts.caFile, '--ca-file', client) : undefined;
    this.ceiling = ceiling;
    const dockerHost = this.opts.dockerHost ?? 'unix:///var/run/docker.sock';
    this.docker = new EngineClient(dockerHost);
    const encryption = await this.state.encryptionKey();
    this.identity = new DeviceIdentity({ controlPlane: this.opts.controlPlane, serial: this.opts.serial, key, encryptionKey: encryption.publicKey, state: this.state, log: this.log, signal: this.abort.signal, backoffCapMs: this.opts.backoffCapMs, trust: this.https });
    await this.identity.load();
    this.deviceId = this.identity.deviceId;
    this.secrets = new SecretFiles({ root: this.opts.secretsDir ?? DEFAULT_SECRETS_ROOT, anyFilesystem: this.opts.secretsDirAnyFs, deviceId: this.deviceId, privateKey: encryption.privateKey, publicKey: encryption.publicKey, log: this.log });
    this.logs = new LogShipper(this.docker, () => this.identity.client, () => this.deviceId, this.log);
    this.runner = new ReleaseRunner({
      docker: this.docker,
      dockerHost,
      deviceId: this.deviceId,
      state: this.state,
      journal: await this.state.loadJournal(),
      log: this.log,
      signal: this.abort.signal,
      fetcher: () => this.fetcher(),
      changed: () => this.reporter.changed(),
      stableMs: this.opts.stableMs,
      healthPollMs: this.opts.healthPollMs,
      ceiling,
      secrets: this.secrets,
    });
    const runner = this.runner;
    this.reporter = new Reporter({
      state: this.state,
      log: this.log,
      build: () => this.buildReport(runner),
      send: (r) => this.identity.call(() => this.identity.client.report(r, this.abort.signal)),
      minIntervalMs: this.opts.reportMinIntervalMs,
      heartbeatMs: this.opts.heartbeatMs,
    });
    await this.reporter.start();
    // Whatever was interrupted finishes or rolls back before anything new is considered.
    this.work.push('tick', () => runner.tick());
    this.loops.push(this.pollLoop(runner));
    const every = setInterval(() => {
      // One pending tick is enough: during a long download they must not pile up behind it.
      if (this.tickQueued) return;
      this.tickQueued = true;
      this.work.push('tick', async () => {
        this.tickQueued = false;
        await runner.tick();
      });
    }, this.opts.reconcileIntervalMs ?? 15_000);
    every.unref();
    this.timers.push(every);
    this.reporter.changed();
  }

  private fetcher(): Promise<ImageFetcher> {
    this.fetcherPromise ??= (async () => {
      const registryProxy = this.opts.registryProxy ?? this.identity.credentials.registryProxy;
      if (!registryProxy) throw new Error('no registry proxy: the control plane gave none at enrollment and --registry-proxy is not set');
      // Loaded on first use: an idle daemon whose images are all local never loads the download code.
      // Typed as the contract, so a drift between the two sides fails the type check.
      const factory: FetcherFactory = this.opts.fetcherFactory ?? (await import('./download/index.js')).createImageFetcher;
      return factory({
        stateDir: join(this.opts.stateDir, 'download'),
        docker: this.docker,
        deviceId: this.deviceId,
        registryProxy,
        trust: this.https,
        pullToken: () => {
          const j = this.runner?.journal;
          return this.identity.pullToken(j?.inflight?.target.sequence ?? j?.current?.sequence ?? null);
        },
        log: this.log.child({ part: 'download' }),
      });
    })();
    this.fetcherPromise.catch(() => (this.fetcherPromise = undefined));
    return this.fetcherPromise;
  }

  private async pollLoop(runner: ReleaseRunner): Promise<void> {
    let etag: string | undefined;
    let keysOfEtag = this.identity.trustedKeysTag;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const began = Date.now();
      try {
        // The ETag names a sequence, not the key that signed it: a document refused under the old
        // key set would be answered 304 for ever (until a new sequence), so ask for it again.
        if (this.refetch || this.identity.trustedKeysTag !== keysOfEtag) {
          if (etag) this.log.info({ etag }, 'trusted keys changed; fetching the desired state again');
          etag = undefined;
          this.lastDocument = undefined;
          this.refetch = false;
          keysOfEtag = this.identity.trustedKeysTag;
        }
        // Each answer starts the backoff over; while there is none, the running release keeps running.
        const answer = await retry(() => this.identity.call(() => this.identity.client.desired(etag, this.opts.longPollSeconds ?? 30, signal)), {
          policy: controlChannelBackoff(this.opts.backoffCapMs),
          signal,
          notBefore: retryAfterOf,
          onRetry: ({ error, delayMs }) => this.log.warn({ err: (error as Error).message, retryInMs: delayMs }, 'desired state not fetched; keeping the running release'),
        });
        if (answer.logRequests) this.logs?.poll();
        if (answer.kind === 'document') {
          etag = answer.etag;
          if (answer.jws !== this.lastDocument) {
            this.pendingDocument = answer.jws;
            this.work.push('document', () => this.handlePending(runner));
          }
        }
        // A server that answers at once (no long-poll support) must not turn this into a busy loop.
        if (Date.now() - began < 1000) await sleep(1000, undefined, { signal });
      } catch {
        // Only closing ends the retries.
        return;
      }
    }
  }

  /** Only the newest document matters: one that arrived while another was applied replaces it. */
  private async handlePending(runner: ReleaseRunner): Promise<void> {
    const jws = this.pendingDocument;
    this.pendingDocument = undefined;
    if (!jws || jws === this.lastDocument) return;
    this.lastDocument = jws;
    try {
      const read = await readDocument(jws, { jwks: this.identity.credentials.jwks as VerifyOptions['keys'], trustKey: this.trust }, this.deviceId);
      const document = await this.secretsReadable(withinCeiling(read, this.ceiling));
      if (document.kind === 'valid') this.seen = { ...this.seen, sequence: document.release.sequence };
      await runner.judge(document);
      if (read.kind === 'invalid' && read.reason === 'unknown-key' && !this.trust) await this.refreshKeys();
    } finally {
      this.seen = { ...this.seen, count: this.seen.count + 1 };
    }
  }

  /** A key rotated since the last renewal: renew for the new JWKS, then the poll fetches the document again. */
  private async refreshKeys(): Promise<void> {
    try {
      if (await this.identity.refreshKeys()) this.refetch = true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'renewal for the signing keys failed; the next scheduled one retries');
    }
  }

  /** A document whose secrets this device cannot decrypt is refused before anything stops. */
  private async secretsReadable(document: ReadDocument): Promise<ReadDocument> {
    if (document.kind !== 'valid') return document;
    try {
      await this.secrets.check(document.release);
      return document;
    } catch (err) {
      return { kind: 'invalid', reason: 'secret-refused', message: `deployment document refused (secret-refused): ${(err as Error).message}` };
    }
  }

  private async buildReport(runner: ReleaseRunner): Promise<ReportBody> {
    const { current, inflight, lastSequence } = runner.journal;
    const services = await reportedServices(this.docker, this.deviceId, current, (err) => this.log.debug({ err: err.message }, 'engine not readable for the report'));
    return {
      desiredSequence: inflight?.target.sequence ?? lastSequence,
      running: current ? releaseLabel(current) : null,
      phase: runner.standing.phase,
      bytes: runner.bytes,
      services,
      platform: hostPlatform(),
      error: runner.standing.error?.slice(0, 8192),
    };
  }

  status(): DaemonStatus {
    const journal = this.runner?.journal;
    return {
      deviceId: this.deviceId,
      phase: this.runner?.standing.phase ?? 'idle',
      running: journal?.current ? releaseLabel(journal.current) : null,
      currentSequence: journal?.current?.sequence ?? null,
      lastSequence: journal?.lastSequence ?? null,
      seenSequence: this.seen.sequence,
      documentsSeen: this.seen.count,
      error: this.runner?.standing.error,
      inflight: Boolean(journal?.inflight),
      busy: this.work.size > 0,
      online: this.identity?.online ?? false,
      queuedReports: this.reporter?.queued ?? 0,
    };
  }

  /** Stops watching and reporting; containers keep running (the daemon is not the workload). */
  async close(): Promise<void> {
    if (this.abort.signal.aborted) return;
    for (const t of this.timers) clearTimeout(t);
    this.identity?.close();
    this.logs?.stop();
    // Let a swap in progress reach a step boundary; the journal covers whatever it leaves.
    this.abort.abort();
    await Promise.allSettled([this.work.idle(), ...this.loops]);
    await this.reporter?.close(false);
    const f = await this.fetcherPromise?.catch(() => undefined);
    await f?.close();
  }

  /** Sends one report now and waits until every queued report is delivered (tests, shutdown). */
  flushReports(timeoutMs = 5000): Promise<void> {
    return this.reporter.flush(timeoutMs);
  }
}

export async function startEdgeDaemon(opts: EdgeDaemonOptions): Promise<EdgeDaemon & { flushReports(timeoutMs?: number): Promise<void> }> {
  const d = new Daemon(opts);
  try {
    await d.start();
  } catch (err) {
    await d.close().catch(() => undefined);
    throw err;
  }
  return d;
}
