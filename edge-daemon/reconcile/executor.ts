import type { EngineClient } from '../engine/client.js';
import type { ContainerInspect } from '../engine/types.js';
import { EngineApiError } from '../engine/http.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../gateway-log.js';
import type { FetchProgress, ImageFetcher } from '../images.js';
import type { Step, StepKind } from './planner.js';
import { LABEL, containerCreateOptions } from './spec.js';
import { attachNetworks, createNetwork, removeNetwork } from './network-exec.js';
import type { Allowance } from '../../manifests/privileges.js';
import { serviceBeyondCeiling } from './ceiling.js';
import { platformMismatch } from './platform.js';
import { startErrorMessage } from './start-error.js';
import { LogFrames } from '../logs/frames.js';

/** The thin, effectful half of reconcile: one function per step kind, applied through the engine client (engine/). */

export interface ExecEnv {
  docker: EngineClient;
  deviceId: string;
  /** The download channel; created on first use so an idle daemon never loads it. */
  fetcher: () => Promise<ImageFetcher>;
  log: Logger;
  signal?: AbortSignal;
  /** Image reference → engine image id, filled by ensure-images. */
  imageIds: Map<string, string>;
  onProgress?: (p: FetchProgress) => void;
  /** Images of the release the gateway runs: the bases layer deltas start from. */
  heldImages?: string[];
  /** Persists the commit (journal); the executor owns no state. */
  onCommit: (step: Extract<Step, { kind: 'commit' }>) => Promise<void>;
  healthPollMs?: number;
  /** The gateway's `--allow` ceiling: no container is created beyond it, whatever the plan says. */
  ceiling?: Allowance;
}

/** The health gate failed: which service, why, and the last lines it logged. */
export class HealthGateError extends Error {
  constructor(
    readonly service: string,
    readonly reason: string,
    readonly logTail: string,
  ) {
    super(`service ${service} ${reason}${logTail ? `; last log lines:\n${logTail}` : ''}`);
    this.name = 'HealthGateError';
  }
}

type Executor<K extends StepKind> = (step: Extract<Step, { kind: K }>, env: ExecEnv) => Promise<void>;
export type Executors = { [K in StepKind]: Executor<K> };

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** Tolerates the answers that mean "already so" (304 not modified, 404 gone), so a replayed step is harmless. */
async function idempotent(fn: () => Promise<unknown>, ok: number[]): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!ok.includes(statusOf(err) ?? -1)) throw err;
  }
}

/** The last `lines` lines of a container's stdout+stderr; without a TTY they come as frames (logs/frames.ts). */
export async function logTail(docker: EngineClient, container: string, lines = 20): Promise<string> {
  try {
    const c = docker.getContainer(container);
    const frames = new LogFrames((await c.inspect()).Config.Tty);
    const raw = await c.logs({ stdout: true, stderr: true, tail: lines });
    return [...frames.push(raw), ...frames.flush()].map((l) => l.line).filter(Boolean).slice(-lines).join('\n');
  } catch (err) {
    return `(logs unavailable: ${(err as Error).message})`;
  }
}

async function resolveImage(image: string, env: ExecEnv): Promise<string> {
  const known = env.imageIds.get(image);
  if (known) return known;
  const got = await (await env.fetcher()).ensureImages([image], { signal: env.signal });
  const id = got[image]?.imageId;
  if (!id) throw new Error(`image ${image}: the download channel returned no image id`);
  env.imageIds.set(image, id);
  return id;
}

async function waitHealthy(step: Extract<Step, { kind: 'wait-healthy' }>, env: ExecEnv): Promise<void> {
  const deadline = Date.now() + step.timeoutMs;
  const poll = env.healthPollMs ?? 500;
  const pending = new Map(step.targets.map((t) => [t.container, { ...t, restarts: -1, stableSince: 0 }]));
  for (;;) {
    for (const [id, t] of pending) {
      let info: ContainerInspect;
      try {
        info = await env.docker.getContainer(id).inspect();
      } catch (err) {
        if (statusOf(err) === 404) throw new HealthGateError(t.service, 'container disappeared', '');
        throw err;
      }
      const st = info.State;
      if (t.restarts < 0) t.restarts = info.RestartCount;
      const health = st.Health?.Status;
      const fail = async (reason: string) => {
        throw new HealthGateError(t.service, reason, await logTail(env.docker, id));
      };
      if (info.RestartCount > t.restarts) await fail(`restarted (exit code ${st.ExitCode})`);
      // A one-shot (restart: no), or a dependency that must complete, is done when it exits 0.
      const oneShot = t.completed || !info.HostConfig.RestartPolicy?.Name || info.HostConfig.RestartPolicy.Name === 'no';
      if (!st.Running && !st.Restarting && oneShot && st.ExitCode === 0 && st.FinishedAt && !st.FinishedAt.startsWith('0001')) {
        pending.delete(id);
        continue;
      }
      if (t.completed && (st.Running || st.Restarting)) continue;
      if (!st.Running && !st.Restarting) await fail(`exited with code ${st.ExitCode}${st.Error ? ` (${st.Error})` : ''}`);
      if (health === 'unhealthy') {
        const last = st.Health?.Log?.at(-1);
        await fail(`is unhealthy${last ? ` (health check exited ${last.ExitCode}${last.Output.trim() ? `: ${last.Output.trim().slice(0, 300)}` : ' with no output'})` : ''}`);
      }
      if (health === 'healthy') pending.delete(id);
      else if (!health || health === 'none') {
        // No healthcheck: running without restarting for a while is the best evidence there is.
        if (!t.stableSince) t.stableSince = Date.now();
        if (Date.now() - t.stableSince >= step.stableMs) pending.delete(id);
      }
    }
    if (pending.size === 0) return;
    if (Date.now() >= deadline) {
      const t = [...pending.values()][0];
      throw new HealthGateError(t.service, `not healthy within ${step.timeoutMs} ms`, await logTail(env.docker, t.container));
    }
    await sleep(poll, undefined, { signal: env.signal });
  }
}

export const executors: Executors = {
  'ensure-images': async (step, env) => {
    const got = await (await env.fetcher()).ensureImages(step.images, { onProgress: env.onProgress, signal: env.signal, have: env.heldImages });
    for (const image of step.images) {
      const id = got[image]?.imageId;
      if (!id) throw new Error(`image ${image}: the download channel returned no image id`);
      env.imageIds.set(image, id);
    }
  },
  'create-volume': async (step, env) => {
    // Creating an existing volume returns it unchanged: a replay after a crash is harmless.
    await env.docker.createVolume({ Name: step.name, Labels: { [LABEL.device]: env.deviceId, [LABEL.volume]: step.volume } });
  },
  'create-network': async (step, env) => createNetwork(env.docker, env.deviceId, step),
  create: async (step, env) => {
    const beyond = serviceBeyondCeiling(step.service, step.spec, env.ceiling);
    if (beyond) throw new Error(beyond);
    const image = await resolveImage(step.spec.image, env);
    if (step.spec.platform) {
      const mismatch = platformMismatch(step.service, step.spec.platform, await env.docker.getImage(image).inspect(), step.spec.image);
      if (mismatch) throw new Error(mismatch);
    }
    const opts = containerCreateOptions(env.deviceId, step.release, step.service, step.spec, image, step.context);
    try {
      await env.docker.createContainer(opts);
    } catch (err) {
      // The name carries the config hash: a conflict means this very container exists (replay after a crash).
      if (statusOf(err) !== 409) throw err;
      const info = await env.docker.getContainer(step.name).inspect();
      if (info.Config.Labels?.[LABEL.configHash] !== step.configHash || info.Config.Labels?.[LABEL.device] !== env.deviceId) {
        throw new Error(`container name ${step.name} is taken by a container that is not this service's`);
      }
    }
    await attachNetworks(env.docker, step.name, step.service, step.spec, step.context);
  },
  start: async (step, env) => {
    try {
      await idempotent(() => env.docker.getContainer(step.container).start(), [304]);
    } catch (err) {
      // The engine's own words (EngineApiError.reason), without the call that carried them.
      throw new Error(startErrorMessage(step.service, err instanceof EngineApiError ? err.reason : (err as Error).message), { cause: err });
    }
  },
  'wait-healthy': waitHealthy,
  stop: async (step, env) =>
    idempotent(() => env.docker.getContainer(step.container).stop(step.graceMs !== undefined ? { t: Math.ceil(step.graceMs / 1000) } : {}), [304, 404]),
  remove: async (step, env) => idempotent(() => env.docker.getContainer(step.container).remove({ force: true }), [404]),
  commit: async (step, env) => env.onCommit(step),
  'prune-images': async (step, env) => (await env.fetcher()).prune(step.keep),
  'remove-network': async (step, env) => removeNetwork(env.docker, step.name, env.log),
};

export function execute(step: Step, env: ExecEnv): Promise<void> {
  // The table is keyed by kind, so the lookup and the step always agree; TS cannot see through the union.
  const run = executors[step.kind] as (s: Step, e: ExecEnv) => Promise<void>;
  return run(step, env);
}
