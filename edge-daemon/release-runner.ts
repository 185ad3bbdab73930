import type { EngineClient } from './engine/client.js';
import { newOpId } from '../common/log-fields.js';
import type { Logger } from './gateway-log.js';
import type { FetchProgress, ImageFetcher } from './images.js';
import { accept, type ReadDocument } from './policy/accept.js';
import { advance, MAX_REASON, type JournalEvent, type SwapOutcome } from './policy/journal.js';
import { nextAction, retryAfter, type Retry } from './policy/next-action.js';
import { phaseAfter, standingAtStart, type PhaseEvent, type Standing } from './policy/phase.js';
import { execute, HealthGateError, type ExecEnv } from './reconcile/executor.js';
import { observe } from './reconcile/observe.js';
import { plan, type Step } from './reconcile/planner.js';
import { releaseLabel, type Release } from './reconcile/spec.js';
import type { Journal, StateDir } from './state.js';
import type { Allowance } from '../manifests/privileges.js';
import type { DeviceReport } from '../protocol/device.js';
import type { SecretFiles } from './secrets/files.js';
import { isoTime } from './iso-time.js';

export interface ReleaseRunnerOptions {
  docker: EngineClient;
  /** As configured, to name the engine in errors. */
  dockerHost: string;
  deviceId: string;
  state: StateDir;
  journal: Journal;
  log: Logger;
  signal: AbortSignal;
  fetcher: () => Promise<ImageFetcher>;
  /** Something a report shows has changed. */
  changed: () => void;
  stableMs?: number;
  healthPollMs?: number;
  /** The gateway's `--allow` ceiling (reconcile/ceiling.ts). */
  ceiling?: Allowance;
  /** Secret files on tmpfs (secrets/files.ts): written before a release's containers, pruned after a swap. */
  secrets: SecretFiles;
}

function imagesOf(r: Release | null): string[] {
  return r ? Object.values(r.spec.services).map((s) => s.image) : [];
}

/**
 * Carries out what the policy decides: a document's verdict, a tick's next action. Every journal
 * change goes through `advance` and is persisted before the step it announces; every phase change
 * goes through `phaseAfter`. The effects are the planner's steps, through the executor's table.
 */
export class ReleaseRunner {
  journal: Journal;
  standing: Standing;
  bytes: DeviceReport['bytes'] = { done: 0, total: 0 };
  private retry: Retry | undefined;
  private readonly imageIds = new Map<string, string>();

  constructor(private readonly opts: ReleaseRunnerOptions) {
    this.journal = opts.journal;
    this.standing = standingAtStart(opts.journal);
  }

  /** Applies, ignores or refuses a document; returns what was decided, for logs and tests. */
  async judge(document: ReadDocument): Promise<ReturnType<typeof accept>> {
    const opId = newOpId();
    const verdict = accept(document, this.journal);
    if (verdict.kind === 'refuse') {
      this.opts.log.warn({ opId, reason: verdict.reason, err: verdict.message }, 'deployment document refused');
      this.note({ kind: 'refused', error: verdict.message });
    }
    if (verdict.kind === 'apply') {
      // A document asks for it now: an older schedule is moot.
      this.retry = undefined;
      await this.apply(verdict.release, opId);
    }
    return verdict;
  }

  /** Periodic and at start: finish an interrupted swap, retry a failed one when due, else repair drift. */
  async tick(): Promise<void> {
    const opId = newOpId();
    const action = nextAction(this.journal, this.retry, Date.now());
    try {
      if (action.kind === 'finish-rollback' || action.kind === 'resume-swap') {
        const f = this.journal.inflight;
        this.opts.log.info({ opId, sequence: f?.target.sequence, step: f?.step, kind: f?.kind, rollingBack: f?.rollingBack }, 'resuming an interrupted swap');
      }
      if (action.kind === 'finish-rollback') await this.rollBack(action.target, new Error('interrupted while rolling back'), action.outcome, opId, action.reason);
      if (action.kind === 'resume-swap') await this.apply(action.target, opId);
      if (action.kind === 'retry') await this.apply(action.release, opId);
      if (action.kind === 'repair') {
        await this.restore(action.current, opId);
        this.note({ kind: 'reconciled', failure: this.journal.failure?.error });
      }
    } catch (err) {
      this.opts.log.warn({ opId, err: (err as Error).message }, 'reconcile failed; will retry');
      this.note({ kind: 'reconcile-failed', error: this.describe(err as Error) });
    }
  }

  private note(event: PhaseEvent): void {
    const { standing, report } = phaseAfter(this.standing, event);
    this.standing = standing;
    if (report) this.opts.changed();
  }

  /** Moves the journal and writes it; false when the event makes no sense in its state (then nothing changes). */
  private async record(event: JournalEvent): Promise<boolean> {
    const next = advance(this.journal, event);
    if (!next) return false;
    this.journal = next;
    await this.opts.state.saveJournal(next);
    return true;
  }

  private execEnv(opId: string): ExecEnv {
    const log = this.opts.log.child({ opId });
    return {
      docker: this.opts.docker,
      deviceId: this.opts.deviceId,
      fetcher: this.opts.fetcher,
      log,
      signal: this.opts.signal,
      imageIds: this.imageIds,
      healthPollMs: this.opts.healthPollMs,
      ceiling: this.opts.ceiling,
      heldImages: imagesOf(this.journal.current),
      onProgress: (p: FetchProgress) => {
        this.bytes = { done: p.done, total: p.total, ...(p.full !== undefined ? { full: p.full, delta: p.delta } : {}) };
        this.opts.changed();
      },
      onCommit: async (step) => {
        if (!(await this.record({ kind: 'commit', sequence: step.sequence }))) throw new Error(`commit of sequence ${step.sequence} without its swap in flight`);
        this.retry = undefined;
        this.note({ kind: 'committed' });
        log.info({ release: step.release, sequence: step.sequence }, 'release committed');
      },
    };
  }

  private async runSteps(steps: Step[], opId: string, onStep?: (i: number, step: Step) => Promise<void>): Promise<void> {
    const env = this.execEnv(opId);
    for (const [i, step] of steps.entries()) {
      if (this.opts.signal.aborted) throw new Error('daemon closing');
      await onStep?.(i, step);
      env.log.debug({ step: step.kind, service: 'service' in step ? step.service : undefined }, 'step');
      await execute(step, env);
    }
  }

  /** Moves to `target`: plan, execute with the journal kept step by step, commit or roll back. */
  private async apply(target: Release, opId: string): Promise<void> {
    const log = this.opts.log.child({ opId, release: releaseLabel(target), sequence: target.sequence });
    await this.record({ kind: 'begin', target, at: isoTime() });
    this.bytes = { done: 0, total: 0 };
    this.note({ kind: 'begin' });
    log.info('applying release');
    try {
      const observed = await observe(this.opts.docker, this.opts.deviceId);
      const steps = plan({ mode: 'apply', desired: target, committedSequence: this.journal.current?.sequence }, observed, {
        deviceId: this.opts.deviceId,
        keepImages: imagesOf(this.journal.current),
        stableMs: this.opts.stableMs,
        secretsRoot: this.opts.secrets.root,
      });
      await this.opts.secrets.materialize(target);
      const committed = steps.findIndex((s) => s.kind === 'commit');
      await this.runSteps(steps.slice(0, committed + 1), opId, async (i, step) => {
        this.note({ kind: 'step', step: step.kind, downloads: step.kind === 'ensure-images' && step.missing.length > 0 });
        if (step.kind !== 'commit') await this.record({ kind: 'step', index: i, step: step.kind });
      });
      if (committed < 0) {
        // Nothing to do and nothing to commit: the target is already what runs.
        await this.record({ kind: 'settle' });
        this.note({ kind: 'settled' });
      } else {
        await this.cleanup(steps.slice(committed + 1), opId);
      }
      await this.pruneSecrets(opId);
    } catch (err) {
      if (this.opts.signal.aborted) return;
      await this.rollBack(target, err as Error, err instanceof HealthGateError ? 'rolled-back' : 'failed', opId);
    }
  }

  /** After commit: old containers and images go; a failure here is retried by the next reconcile. */
  private async cleanup(steps: Step[], opId: string): Promise<void> {
    try {
      await this.runSteps(steps, opId);
    } catch (err) {
      this.opts.log.warn({ opId, err: (err as Error).message }, 'cleanup after commit incomplete; the next reconcile finishes it');
    }
  }

  private async rollBack(target: Release, cause: Error, outcome: SwapOutcome, opId: string, resumed?: string): Promise<void> {
    const health = outcome === 'rolled-back';
    const reason = resumed ?? (health ? `release ${releaseLabel(target)} rolled back: ${cause.message}` : `release ${releaseLabel(target)} failed: ${this.describe(cause)}`);
    this.opts.log.warn({ opId, err: cause.message, sequence: target.sequence }, health ? 'health gate failed; rolling back' : 'apply failed; restoring the running release');
    await this.record({ kind: 'roll-back', outcome, reason });
    this.note({ kind: 'rolling-back', reason });
    try {
      await this.restore(this.journal.current, opId);
    } catch (err) {
      // The engine may be down; the journal still says "rolling back", so the next tick resumes it.
      const current = this.journal.current ? releaseLabel(this.journal.current) : 'the empty release';
      this.note({ kind: 'restore-failed', error: `${reason}; restoring ${current} failed too: ${this.describe(err as Error)}` });
      return;
    }
    await this.record({ kind: 'restored', sequence: target.sequence, outcome, reason });
    await this.pruneSecrets(opId);
    this.retry = retryAfter(outcome, target, this.retry, Date.now());
    this.note({ kind: 'restored', outcome, reason: reason.slice(0, MAX_REASON) });
  }

  /** Brings back a release that is already current (adopt, repair, roll back): nothing commits. */
  private async restore(current: Release | null, opId: string): Promise<void> {
    const steps = plan({ mode: 'restore', current }, await observe(this.opts.docker, this.opts.deviceId), {
      deviceId: this.opts.deviceId,
      stableMs: this.opts.stableMs,
      keepImages: imagesOf(this.journal.previous),
      secretsRoot: this.opts.secrets.root,
    });
    if (steps.length) {
      if (current) await this.opts.secrets.materialize(current);
      this.opts.log.info({ opId, steps: steps.map((s) => s.kind) }, 'restoring the current release');
      await this.runSteps(steps, opId);
    }
  }

  /** Only the running release's secret files stay on the tmpfs; a failure here is retried after the next swap. */
  private async pruneSecrets(opId: string): Promise<void> {
    await this.opts.secrets.prune([this.journal.current]).catch((err: unknown) => this.opts.log.warn({ opId, err: (err as Error).message }, 'removing old secret files failed'));
  }

  /** Names the engine when it is the engine that failed: the most common field failure deserves a plain reason. */
  private describe(err: Error): string {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && ['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE'].includes(code)) {
      return `Docker engine unreachable at ${this.opts.dockerHost} (${code})`;
    }
    return err.message;
  }
}
