import type Dockerode from 'dockerode';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeProtectedHeader } from 'jose';
import { createLogger, newOpId, type Logger } from '../common/log.js';
import { DeploymentRejected, verifyDeployment, type VerifyOptions } from '../manifests/deployment.js';
import { importPublicKey, loadPrivateKey } from '../manifests/keys.js';
import type { ReleasePhase, ServiceReport } from '../manifests/protocol.js';
import { ControlClient, ControlError } from './control.js';
import { loadDownloadChannel, type FetcherFactory, type ImageFetcher } from './images.js';
import { execute, HealthGateError, type ExecEnv } from './reconcile/executor.js';
import { observe } from './reconcile/observe.js';
import { plan, type Step } from './reconcile/planner.js';
import { LABEL, releaseLabel, type Release } from './reconcile/spec.js';
import { Reporter, type ReportBody } from './report.js';
import { StateDir, type Credentials, type Journal } from './state.js';

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

/** Reads the engine's state into a reported service entry. */
function serviceReportOf(info: Dockerode.ContainerInspectInfo, image: string): ServiceReport {
  const st = info.State;
  const status = (['created', 'running', 'restarting', 'exited', 'paused', 'dead'] as const).find((s) => s === st.Status) ?? 'dead';
  const health = (['starting', 'healthy', 'unhealthy'] as const).find((h) => h === st.Health?.Status) ?? 'none';
  return {
    image,
    imageId: info.Image,
    containerId: info.Id,
    status,
    health,
    restarts: info.RestartCount,
    exitCode: st.Running ? undefined : st.ExitCode,
    lastError: st.Error ? st.Error.slice(0, 4096) : undefined,
  };
}

/**
 * One gateway daemon: enrolls, long-polls its desired state, verifies it, converges the engine on
 * it through the planner and executor, gates on health, rolls back, reports. Built from its options
 * alone (no module state), so several run side by side in one process for tests and demos.
 */
class Daemon implements EdgeDaemon {
  deviceId = '';
  private creds!: Credentials;
  private key!: KeyObject;
  private trust: KeyObject | undefined;
  private docker!: Dockerode;
  private client!: ControlClient;
  private reporter!: Reporter;
  private journal!: Journal;
  private phase: ReleasePhase = 'idle';
  private error: string | undefined;
  private bytes = { done: 0, total: 0 };
  private online = false;
  private fetcherPromise: Promise<ImageFetcher> | undefined;
  private pullTokenCache: { token: string; expires: number; release: number | null } | undefined;
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
    this.key = typeof this.opts.key === 'string' ? await loadPrivateKey(this.opts.key) : this.opts.key;
    if (this.opts.trustKey) {
      this.trust = importPublicKey(await readFile(this.opts.trustKey, 'utf8'));
    }
    const { default: Docker } = await import('dockerode');
    this.docker = new Docker(dockerOptions(this.opts.dockerHost ?? 'unix:///var/run/docker.sock'));
    this.client = new ControlClient(this.opts.controlPlane, () => this.creds?.token, this.log);
    await this.enrollIfNeeded();
    this.journal = await this.state.loadJournal();
    this.phase = this.journal.failure?.phase ?? (this.journal.current ? 'running' : 'idle');
    this.error = this.journal.failure?.error;
    this.reporter = new Reporter({
      state: this.state,
      log: this.log,
      build: () => this.buildReport(),
      send: (r) => this.withAuth(() => this.client.report(r, this.abort.signal)),
      minIntervalMs: this.opts.reportMinIntervalMs,
      heartbeatMs: this.opts.heartbeatMs,
    });
    await this.reporter.start();
    this.scheduleRenewal();
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

  // ── enrollment and tokens ────────────────────────────────────────────────────────────────

  private async enrollIfNeeded(): Promise<void> {
    const saved = await this.state.loadCredentials();
    if (saved && saved.serial === this.opts.serial) {
      this.creds = saved;
      this.deviceId = saved.deviceId;
      return;
    }
    let backoff = 1000;
    for (;;) {
      try {
        await this.enroll();
        return;
      } catch (err) {
        if (this.abort.signal.aborted) throw err;
        // A refused proof will not get better by retrying fast; a network error might.
        this.log.warn({ err: (err as Error).message }, 'enrollment failed; retrying');
        await sleep(this.jitter(backoff), undefined, { signal: this.abort.signal });
        backoff = Math.min(backoff * 2, this.opts.backoffCapMs ?? 30_000);
      }
    }
  }

  private async enroll(): Promise<void> {
    const res = await this.client.enroll(this.opts.serial, this.key, this.abort.signal);
    if (this.deviceId && res.deviceId !== this.deviceId) throw new Error(`control plane answered device id ${res.deviceId}, this device is ${this.deviceId}`);
    this.creds = {
      deviceId: res.deviceId,
      serial: this.opts.serial,
      token: res.token,
      tokenExpiresAt: res.tokenExpiresAt,
      registryProxy: res.registryProxy,
      jwks: res.jwks,
      controlPlane: this.opts.controlPlane,
    };
    this.deviceId = res.deviceId;
    await this.state.saveCredentials(this.creds);
  }

  private scheduleRenewal(): void {
    const left = Date.parse(this.creds.tokenExpiresAt) - Date.now();
    // Renew at 80 % of what is left, with a fresh proof of the key; never busy-loop on a past expiry.
    const delay = Math.min(Math.max(left * 0.8, 5_000), 2 ** 31 - 1);
    const t = setTimeout(() => {
      this.enroll().then(
        () => this.scheduleRenewal(),
        (err: unknown) => {
          this.log.warn({ err: (err as Error).message }, 'token renewal failed; retrying');
          const again = setTimeout(() => this.scheduleRenewal(), this.jitter(10_000));
          again.unref();
          this.timers.push(again);
        },
      );
    }, delay);
    t.unref();
    this.timers.push(t);
  }

  /** Runs a control-plane call; on 401 renews the token with a fresh proof and tries once more. */
  private async withAuth<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      this.online = true;
      return out;
    } catch (err) {
      // No answer, or a gateway in front answering for a control plane that is down.
      if (err instanceof ControlError && (err.status === undefined || err.status >= 500)) this.online = false;
      if (!(err instanceof ControlError && err.unauthorized)) throw err;
      await this.enroll();
      return fn();
    }
  }

  /**
   * The proxy lets a pull token reach only the digests of the desired state it was minted for, so a
   * token is reused only within the release it was minted for (and while it has a minute left).
   */
  private async pullToken(): Promise<string> {
    const c = this.pullTokenCache;
    const release = this.journal.inflight?.target.sequence ?? this.journal.current?.sequence ?? null;
    if (c && c.release === release && c.expires - Date.now() > 60_000) return c.token;
    const res = await this.withAuth(() => this.client.pullToken(this.abort.signal));
    this.pullTokenCache = { token: res.token, expires: Date.parse(res.expiresAt), release };
    return res.token;
  }

  private fetcher(): Promise<ImageFetcher> {
    this.fetcherPromise ??= (async () => {
      const registryProxy = this.opts.registryProxy ?? this.creds.registryProxy;
      if (!registryProxy) throw new Error('no registry proxy: the control plane gave none at enrollment and --registry-proxy is not set');
      const factory = this.opts.fetcherFactory ?? (await loadDownloadChannel());
      return factory({
        stateDir: join(this.opts.stateDir, 'download'),
        docker: this.docker,
        deviceId: this.deviceId,
        registryProxy,
        pullToken: () => this.pullToken(),
        log: this.log.child({ part: 'download' }),
      });
    })();
    this.fetcherPromise.catch(() => (this.fetcherPromise = undefined));
    return this.fetcherPromise;
  }

  // ── desired state ────────────────────────────────────────────────────────────────────────

  private jitter(ms: number): number {
    return ms * (0.5 + Math.random() * 0.5);
  }

  private async pollLoop(): Promise<void> {
    let etag: string | undefined;
    let backoff = 1000;
    const cap = this.opts.backoffCapMs ?? 30_000;
    while (!this.abort.signal.aborted) {
      const began = Date.now();
      try {
        const answer = await this.withAuth(() => this.client.desired(etag, this.opts.longPollSeconds ?? 30, this.abort.signal));
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
        await sleep(this.jitter(backoff), undefined, { signal: this.abort.signal }).catch(() => undefined);
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
    if (!this.trust) return this.creds.jwks as VerifyOptions['keys'];
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
      steps = plan(target, await observe(this.docker, this.deviceId), {
        deviceId: this.deviceId,
        mode: 'apply',
        committedSequence: this.journal.current?.sequence,
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
      this.retry = { release: target, at: Date.now() + this.jitter(delay), delay };
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
    const steps = plan(release, await observe(this.docker, this.deviceId), {
      deviceId: this.deviceId,
      mode: 'restore',
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
    const services: Record<string, ServiceReport> = {};
    const current = this.journal.current;
    try {
      const seen = await observe(this.docker, this.deviceId);
      const byService = new Map<string, typeof seen.containers>();
      for (const c of seen.containers) {
        const s = c.labels[LABEL.service] ?? '';
        byService.set(s, [...(byService.get(s) ?? []), c]);
      }
      for (const [service, list] of byService) {
        const pick = list.find((c) => c.state === 'running' || c.state === 'restarting') ?? list[0];
        const info = await this.docker.getContainer(pick.id).inspect();
        services[service] = serviceReportOf(info, pick.labels[LABEL.image] ?? info.Config.Image);
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'engine not readable for the report');
    }
    for (const [name, s] of Object.entries(current?.spec.services ?? {})) {
      services[name] ??= { image: s.image, status: 'missing', health: 'none', restarts: 0 };
    }
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
      online: this.online,
      queuedReports: this.reporter?.queued ?? 0,
    };
  }

  /** Stops watching and reporting; containers keep running (the daemon is not the workload). */
  async close(): Promise<void> {
    if (this.abort.signal.aborted) return;
    for (const t of this.timers) clearTimeout(t);
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
