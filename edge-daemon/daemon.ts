import type Dockerode from 'dockerode';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeProtectedHeader } from 'jose';
import { createLogger, newOpId, type Logger } from '../common/log.js';
import { DeploymentRejected, verifyDeployment, type VerifyOptions } from '../protocol/deployment.js';
import { importPublicKey, loadPrivateKey } from '../protocol/keys.js';
import type { ReleasePhase } from '../protocol/protocol.js';
import { DeviceIdentity, jitter } from './identity.js';
import { deferUnusedDockerDependencies } from './lean-docker.js';
import type { FetcherFactory, ImageFetcher } from './images.js';
import { execute, HealthGateError, type ExecEnv } from './reconcile/executor.js';
import { observe } from './reconcile/observe.js';
import { plan, type Step } from './reconcile/planner.js';
import { releaseLabel, type Release } from './reconcile/spec.js';
import { Reporter, type ReportBody } from './report.js';
import { reportedServices } from './reported.js';
import { StateDir, type Journal } from './state.js';

const RECONCILE_FAILED = 'reconcile failed: ';

export interface EdgeDaemonOptions {
  controlPlane: string;
  stateDir: string;
  serial: string;
  /** Path of the device's Ed25519 private key (PKCS#8 PEM), or the key itself. */
  key: string | KeyObject;
  /** unix:///path/docker.sock or tcp://host:port; default unix:///var/run/docker.sock. */
  dockerHost?: string;
  /** Path of a PEM or raw Ed25519 public key that overrides the JWKS pinned at enrollment. */
  trustKey?: string;
  /** Overrides the registry proxy URL the control plane gave at enrollment. */
  registryProxy?: string;
  log?: Logger;
  /** The download channel; default the one in `download/`, loaded on first use. */
  fetcherFactory?: FetcherFactory;
  longPollSeconds?: number;
  heartbeatMs?: number;
  reportMinIntervalMs?: number;
  /** How often the running release is checked against the engine (drift, engine restarts, retries). */
  reconcileIntervalMs?: number;
  /** Without a healthcheck, how long a started container must run without restarting. */
  stableMs?: number;
  healthPollMs?: number;
  backoffCapMs?: number;
}

export interface DaemonStatus {
  deviceId: string;
  phase: ReleasePhase;
  running: string | null;
  currentSequence: number | null;
  lastSequence: number | null;
  /** Sequence of the last document received (applied, ignored or refused); null before any. */
  seenSequence: number | null;
  /** How many documents have been received and judged (tests wait on this). */
  documentsSeen: number;
  error?: string;
  inflight: boolean;
  /** True while the daemon applies, restores or judges something (tests wait for false). */
  busy: boolean;
  online: boolean;
  queuedReports: number;
}

export interface EdgeDaemon {
  deviceId: string;
  status(): DaemonStatus;
  close(): Promise<void>;
}

export function dockerOptions(host: string): Dockerode.DockerOptions {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const u = new URL(host.replace(/^tcp:/, 'http:'));
  return { host: u.hostname, port: Number(u.port || 2375), protocol: 'http' };
}

function imagesOf(r: Release | null): string[] {
  return r ? Object.values(r.spec.services).map((s) => s.image) : [];
}

/**
 * One gateway daemon: enrolls, long-polls its desired state, verifies it, converges the engine on
 * it through the planner and executor, gates on health, rolls back, reports. Built from its options
 * alone (no module state), so several run side by side in one process for tests and demos.
 */
class Daemon implements EdgeDaemon {
  deviceId = '';
  private identity!: DeviceIdentity;
  private trust: KeyObject | undefined;
  private docker!: Dockerode;
  private reporter!: Reporter;
  private journal!: Journal;
  private phase: ReleasePhase = 'idle';
  private error: string | undefined;
  private bytes = { done: 0, total: 0 };
  private fetcherPromise: Promise<ImageFetcher> | undefined;
  private readonly imageIds = new Map<string, string>();
  private readonly abort = new AbortController();
  private work: Promise<void> = Promise.resolve();
  private busy = 0;
  private tickQueued = false;
  private pendingDocument: string | undefined;
  private lastDocument: string | undefined;
  private seen = { sequence: null as number | null, count: 0 };
  private retry: { release: Release; at: number; delay: number } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private loops: Promise<void>[] = [];
  private readonly log: Logger;
  private readonly state: StateDir;

  constructor(private readonly opts: EdgeDaemonOptions) {
    this.log = opts.log ?? createLogger('edge-daemon');
    this.state = new StateDir(opts.stateDir);
  }

  async start(): Promise<void> {
    await this.state.init();
    const key = typeof this.opts.key === 'string' ? await loadPrivateKey(this.opts.key) : this.opts.key;
    if (this.opts.trustKey) {
      this.trust = importPublicKey(await readFile(this.opts.trustKey, 'utf8'));
    }
    // Before dockerode's first load: keeps its BuildKit (gRPC) and ssh dependencies out of memory.
    deferUnusedDockerDependencies();
    const { default: Docker } = await import('dockerode');
    this.docker = new Docker(dockerOptions(this.opts.dockerHost ?? 'unix:///var/run/docker.sock'));
    this.identity = new DeviceIdentity({ controlPlane: this.opts.controlPlane, serial: this.opts.serial, key, state: this.state, log: this.log, signal: this.abort.signal, backoffCapMs: this.opts.backoffCapMs });
    await this.identity.load();
    this.deviceId = this.identity.deviceId;
    this.journal = await this.state.loadJournal();
    this.phase = this.journal.failure?.phase ?? (this.journal.current ? 'running' : 'idle');
    this.error = this.journal.failure?.error;
    this.reporter = new Reporter({
      state: this.state,
      log: this.log,
      build: () => this.buildReport(),
      send: (r) => this.identity.call(() => this.identity.client.report(r, this.abort.signal)),
      minIntervalMs: this.opts.reportMinIntervalMs,
      heartbeatMs: this.opts.heartbeatMs,
    });
    await this.reporter.start();
    // Whatever was interrupted finishes or rolls back before anything new is considered.
    this.enqueue(() => this.tick());
    this.loops.push(this.pollLoop());
    const every = setInterval(() => {
      // One pending tick is enough: during a long download they must not pile up behind it.
      if (this.tickQueued) return;
      this.tickQueued = true;
      this.enqueue(async () => {
        this.tickQueued = false;
        await this.tick();
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
        pullToken: () => this.identity.pullToken(this.journal.inflight?.target.sequence ?? this.journal.current?.sequence ?? null),
        log: this.log.child({ part: 'download' }),
      });
    })();
    this.fetcherPromise.catch(() => (this.fetcherPromise = undefined));
    return this.fetcherPromise;
  }

  // ── desired state ────────────────────────────────────────────────────────────────────────

  private async pollLoop(): Promise<void> {
    let etag: string | undefined;
    let backoff = 1000;
    const cap = this.opts.backoffCapMs ?? 30_000;
    while (!this.abort.signal.aborted) {
      const began = Date.now();
      try {
        const answer = await this.identity.call(() => this.identity.client.desired(etag, this.opts.longPollSeconds ?? 30, this.abort.signal));
        backoff = 1000;
        if (answer.kind === 'document') {
          etag = answer.etag;
          if (answer.jws !== this.lastDocument) {
            this.pendingDocument = answer.jws;
            this.enqueue(() => this.handlePending());
          }
        }
        // A server that answers at once (no long-poll support) must not turn this into a busy loop.
        if (Date.now() - began < 1000) await sleep(1000, undefined, { signal: this.abort.signal });
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.log.warn({ err: (err as Error).message, retryInMs: backoff }, 'desired state not fetched; keeping the running release');
        await sleep(jitter(backoff), undefined, { signal: this.abort.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, cap);
      }
    }
  }

  private enqueue(fn: () => Promise<void>): void {
    this.busy += 1;
    this.work = this.work.then(async () => {
      try {
        if (!this.abort.signal.aborted) await fn();
      } catch (err) {
        if (!this.abort.signal.aborted) this.log.error({ err }, 'daemon work failed');
      } finally {
        this.busy -= 1;
      }
    });
  }

  private keys(jws: string): VerifyOptions['keys'] {
    if (!this.trust) return this.identity.credentials.jwks as VerifyOptions['keys'];
    // An operator-provided key is the only trusted one, whatever kid the document names.
    const kid = decodeProtectedHeader(jws).kid ?? '';
    return { [kid]: this.trust };
  }

  private async handlePending(): Promise<void> {
    const jws = this.pendingDocument;
    this.pendingDocument = undefined;
    if (!jws || jws === this.lastDocument) return;
    this.lastDocument = jws;
    try {
      await this.judge(jws);
    } finally {
      this.seen = { ...this.seen, count: this.seen.count + 1 };
    }
  }

  /** Verifies a document and applies it, ignores it (already handled) or refuses it (reported). */
  private async judge(jws: string): Promise<void> {
    const opId = newOpId();
    let release: Release;
    try {
      let keys: VerifyOptions['keys'];
      try {
        keys = this.keys(jws);
      } catch (err) {
        throw new DeploymentRejected('malformed', (err as Error).message);
      }
      const doc = await verifyDeployment(jws, { keys, device: this.deviceId });
      this.seen = { ...this.seen, sequence: doc.sequence };
      release = { sequence: doc.sequence, name: doc.manifest.name, version: doc.manifest.version, digest: doc.manifest.digest, spec: doc.spec };
      const last = this.journal.lastSequence;
      if (last !== null && doc.sequence <= last) {
        if (doc.sequence === this.journal.current?.sequence) return;
        const failed = this.journal.failure;
        // A release that failed for a reason that may heal (download, engine) is tried again; a
        // rolled-back one waits for a higher sequence so a bad release is not applied in a loop.
        if (failed?.sequence === doc.sequence && failed.phase === 'rolled-back') return;
        if (!(failed?.sequence === doc.sequence && failed.phase === 'failed')) {
          throw new DeploymentRejected('replayed', `sequence ${doc.sequence} is not above the last applied ${last}`);
        }
      }
    } catch (err) {
      if (!(err instanceof DeploymentRejected)) throw err;
      // Refused: nothing runs differently; the phase stays, the reason is reported.
      this.log.warn({ opId, reason: err.reason, err: err.message }, 'deployment document refused');
      this.error = err.message;
      this.reporter.changed();
      return;
    }
    this.retry = undefined;
    await this.apply(release, opId);
  }

  // ── reconcile ────────────────────────────────────────────────────────────────────────────

  private setPhase(phase: ReleasePhase, error?: string): void {
    this.phase = phase;
    this.error = error;
    this.reporter.changed();
  }

  private execEnv(opId: string): ExecEnv {
    return {
      docker: this.docker,
      deviceId: this.deviceId,
      fetcher: () => this.fetcher(),
      log: this.log.child({ opId }),
      signal: this.abort.signal,
      imageIds: this.imageIds,
      healthPollMs: this.opts.healthPollMs,
      onProgress: (p) => {
        this.bytes = { done: p.done, total: p.total };
        this.reporter.changed();
      },
      onCommit: async (step) => {
        const target = this.journal.inflight?.target;
        if (!target || target.sequence !== step.sequence) throw new Error(`commit of sequence ${step.sequence} without its swap in flight`);
        this.journal = { ...this.journal, previous: this.journal.current, current: target, inflight: null, failure: null };
        await this.state.saveJournal(this.journal);
        this.retry = undefined;
        this.setPhase('running');
        this.log.info({ opId, release: step.release, sequence: step.sequence }, 'release committed');
      },
    };
  }

  private async runSteps(steps: Step[], opId: string, onStep?: (i: number, step: Step) => Promise<void>): Promise<void> {
    const env = this.execEnv(opId);
    for (const [i, step] of steps.entries()) {
      if (this.abort.signal.aborted) throw new Error('daemon closing');
      await onStep?.(i, step);
      env.log.debug({ step: step.kind, service: 'service' in step ? step.service : undefined }, 'step');
      await execute(step, env);
    }
  }

  /** Moves to `target`: plan, execute with the journal kept step by step, commit or roll back. */
  private async apply(target: Release, opId: string): Promise<void> {
    const log = this.log.child({ opId, release: releaseLabel(target), sequence: target.sequence });
    this.journal = {
      ...this.journal,
      lastSequence: Math.max(this.journal.lastSequence ?? -1, target.sequence),
      inflight: { target, step: -1, kind: 'plan', rollingBack: false, startedAt: new Date().toISOString() },
    };
    await this.state.saveJournal(this.journal);
    this.bytes = { done: 0, total: 0 };
    this.setPhase('applying');
    log.info('applying release');
    let steps: Step[];
    try {
      steps = plan({ mode: 'apply', desired: target, committedSequence: this.journal.current?.sequence }, await observe(this.docker, this.deviceId), {
        deviceId: this.deviceId,
        keepImages: imagesOf(this.journal.current),
        stableMs: this.opts.stableMs,
      });
      const committed = steps.findIndex((s) => s.kind === 'commit');
      await this.runSteps(steps.slice(0, committed + 1), opId, async (i, step) => {
        if (step.kind === 'ensure-images' && step.missing.length) this.setPhase('downloading');
        if (this.phase === 'downloading' && step.kind !== 'ensure-images') this.setPhase('downloaded');
        if (step.kind !== 'commit' && this.journal.inflight) {
          this.journal = { ...this.journal, inflight: { ...this.journal.inflight, step: i, kind: step.kind } };
          await this.state.saveJournal(this.journal);
        }
      });
      if (committed < 0) {
        // Nothing to do and nothing to commit: the target is already what runs.
        this.journal = { ...this.journal, inflight: null };
        await this.state.saveJournal(this.journal);
        this.setPhase('running');
      }
      if (committed >= 0) await this.cleanup(steps.slice(committed + 1), opId);
    } catch (err) {
      if (this.abort.signal.aborted) return;
      await this.rollBack(target, err as Error, err instanceof HealthGateError ? 'rolled-back' : 'failed', opId);
    }
  }

  /** After commit: old containers and images go; a failure here is retried by the next reconcile. */
  private async cleanup(steps: Step[], opId: string): Promise<void> {
    try {
      await this.runSteps(steps, opId);
    } catch (err) {
      this.log.warn({ opId, err: (err as Error).message }, 'cleanup after commit incomplete; the next reconcile finishes it');
    }
  }

  private async rollBack(target: Release, cause: Error, phase: 'rolled-back' | 'failed', opId: string, resumed?: string): Promise<void> {
    const health = phase === 'rolled-back';
    const reason = resumed ?? (health ? `release ${releaseLabel(target)} rolled back: ${cause.message}` : `release ${releaseLabel(target)} failed: ${this.describe(cause)}`);
    this.log.warn({ opId, err: cause.message, sequence: target.sequence }, health ? 'health gate failed; rolling back' : 'apply failed; restoring the running release');
    if (this.journal.inflight) {
      this.journal = { ...this.journal, inflight: { ...this.journal.inflight, rollingBack: true, rollback: { phase, reason: reason.slice(0, 8000) } } };
      await this.state.saveJournal(this.journal);
    }
    this.setPhase('applying', reason);
    try {
      await this.restore(this.journal.current, opId);
    } catch (err) {
      // The engine may be down; the journal still says "rolling back", so the next tick resumes it.
      this.setPhase('failed', `${reason}; restoring ${this.journal.current ? releaseLabel(this.journal.current) : 'the empty release'} failed too: ${this.describe(err as Error)}`);
      return;
    }
    this.journal = { ...this.journal, inflight: null, failure: { sequence: target.sequence, phase, error: reason.slice(0, 8000) } };
    await this.state.saveJournal(this.journal);
    if (!health) {
      const delay = this.retry ? Math.min(this.retry.delay * 2, 300_000) : 5_000;
      this.retry = { release: target, at: Date.now() + jitter(delay), delay };
    }
    this.setPhase(phase, reason.slice(0, 8000));
  }

  /** Names the engine when it is the engine that failed: the most common field failure deserves a plain reason. */
  private describe(err: Error): string {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && ['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE'].includes(code)) {
      return `Docker engine unreachable at ${this.opts.dockerHost ?? 'unix:///var/run/docker.sock'} (${code})`;
    }
    return err.message;
  }

  /** Brings back a release that is already current (adopt, repair, roll back): nothing commits. */
  private async restore(release: Release | null, opId: string): Promise<void> {
    const steps = plan({ mode: 'restore', current: release }, await observe(this.docker, this.deviceId), {
      deviceId: this.deviceId,
      stableMs: this.opts.stableMs,
      keepImages: imagesOf(this.journal.previous),
    });
    if (steps.length) {
      this.log.info({ opId, steps: steps.map((s) => s.kind) }, 'restoring the current release');
      await this.runSteps(steps, opId);
    }
  }

  /** Periodic: finish an interrupted swap, retry a failed one when due, otherwise repair drift. */
  private async tick(): Promise<void> {
    const opId = newOpId();
    const inflight = this.journal.inflight;
    try {
      if (inflight) {
        this.log.info({ opId, sequence: inflight.target.sequence, step: inflight.step, kind: inflight.kind, rollingBack: inflight.rollingBack }, 'resuming an interrupted swap');
        if (inflight.rollingBack) {
          const how = inflight.rollback ?? { phase: 'rolled-back' as const, reason: `release ${releaseLabel(inflight.target)} rolled back` };
          await this.rollBack(inflight.target, new Error('interrupted while rolling back'), how.phase, opId, how.reason);
        }
        else await this.apply(inflight.target, opId);
        return;
      }
      if (this.retry && Date.now() >= this.retry.at) {
        await this.apply(this.retry.release, opId);
        return;
      }
      await this.restore(this.journal.current, opId);
      if (this.error?.startsWith(RECONCILE_FAILED)) {
        // The engine answers again and the release is whole: the outage is over.
        this.error = this.journal.failure?.error;
        this.reporter.changed();
      }
    } catch (err) {
      this.log.warn({ opId, err: (err as Error).message }, 'reconcile failed; will retry');
      const error = `${RECONCILE_FAILED}${this.describe(err as Error)}`;
      if (this.error !== error) {
        this.error = error;
        this.reporter.changed();
      }
    }
  }

  // ── report ───────────────────────────────────────────────────────────────────────────────

  private async buildReport(): Promise<ReportBody> {
    const current = this.journal.current;
    const services = await reportedServices(this.docker, this.deviceId, current, (err) => this.log.debug({ err: err.message }, 'engine not readable for the report'));
    return {
      desiredSequence: this.journal.inflight?.target.sequence ?? this.journal.lastSequence,
      running: current ? releaseLabel(current) : null,
      phase: this.phase,
      bytes: this.bytes,
      services,
      error: this.error?.slice(0, 8192),
    };
  }

  status(): DaemonStatus {
    return {
      deviceId: this.deviceId,
      phase: this.phase,
      running: this.journal?.current ? releaseLabel(this.journal.current) : null,
      currentSequence: this.journal?.current?.sequence ?? null,
      lastSequence: this.journal?.lastSequence ?? null,
      seenSequence: this.seen.sequence,
      documentsSeen: this.seen.count,
      error: this.error,
      inflight: Boolean(this.journal?.inflight),
      busy: this.busy > 0,
      online: this.identity?.online ?? false,
      queuedReports: this.reporter?.queued ?? 0,
    };
  }

  /** Stops watching and reporting; containers keep running (the daemon is not the workload). */
  async close(): Promise<void> {
    if (this.abort.signal.aborted) return;
    for (const t of this.timers) clearTimeout(t);
    this.identity?.close();
    // Let a swap in progress reach a step boundary; the journal covers whatever it leaves.
    this.abort.abort();
    await Promise.allSettled([this.work, ...this.loops]);
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
