import type { Service, UpdateStrategy } from '../../manifests/model.js';
import { LABEL, volumeName, releaseLabel, serviceIdentities, type Release, type ServiceContext } from './spec.js';
import { networkChanges, type ObservedNetwork } from './networks.js';
import { DEFAULT_SECRETS_ROOT } from '../secrets/mounts.js';

/**
 * The pure half of reconcile: from the release a device must run and what its engine holds, the
 * ordered steps that get it there. No Docker here, so every decision is unit-tested; the executor
 * only carries steps out.
 */

export type ContainerState = 'created' | 'running' | 'restarting' | 'exited' | 'paused' | 'dead' | 'removing';

export interface ObservedContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: ContainerState;
  /** Exit code of an exited container, when the engine says it. */
  exitCode?: number;
}

export interface ObservedVolume {
  name: string;
  labels: Record<string, string>;
}

export interface Observed {
  containers: ObservedContainer[];
  /** Manifest digests (sha256:…) of the images the engine holds. */
  images: string[];
  volumes: ObservedVolume[];
  /** This device's networks (by label); absent: none observed. */
  networks?: ObservedNetwork[];
}

export type Step =
  /** Every image the new containers need is local before the step returns (downloads what is missing). */
  | { kind: 'ensure-images'; images: string[]; missing: string[] }
  | { kind: 'create-volume'; volume: string; name: string }
  | { kind: 'create-network'; network: string; name: string; internal: boolean }
  | { kind: 'create'; service: string; name: string; configHash: string; release: Pick<Release, 'name' | 'version' | 'sequence'>; spec: Service; context: ServiceContext }
  | { kind: 'start'; service: string; container: string }
  /** Healthy (Docker healthcheck) or, without one, running without restarting for `stableMs`. */
  | { kind: 'wait-healthy'; targets: { service: string; container: string; completed?: true }[]; timeoutMs: number; stableMs: number }
  | { kind: 'stop'; service: string; container: string; graceMs?: number }
  | { kind: 'remove'; service: string; container: string }
  /** The new release is in place and healthy: it becomes current, the old one previous. */
  | { kind: 'commit'; sequence: number; release: string }
  | { kind: 'prune-images'; keep: string[] }
  /** After commit: a network of this device that the release no longer uses (kept while anything uses it). */
  | { kind: 'remove-network'; name: string };

export type StepKind = Step['kind'];

/**
 * What the plan moves to. `apply` moves to a new release and ends in commit, so it always names
 * one; `restore` brings back the release that is already current (adopt after a restart, repair
 * drift, roll back), which is null before the first commit, and commits nothing.
 */
export type PlanTarget =
  | {
      mode: 'apply';
      desired: Release;
      /** Sequence of the committed release; an apply of the same content under a new sequence only commits. */
      committedSequence?: number;
    }
  | { mode: 'restore'; current: Release | null };

export interface PlanOptions {
  deviceId: string;
  /** Overrides the release's own `update.strategy`. */
  strategy?: UpdateStrategy;
  /** Images to keep besides the desired release's (the previous release's, for a later rollback). */
  keepImages?: string[];
  /** Without a healthcheck, how long a started container must run without restarting. */
  stableMs?: number;
  /** Health timeout when the release carries none (restore of a null release). */
  defaultHealthTimeoutMs?: number;
  /** Where secret files live (edge-daemon/secrets); default DEFAULT_SECRETS_ROOT. */
  secretsRoot?: string;
}

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

const DEFAULT_STABLE_MS = 3000;

function digestOf(image: string): string | undefined {
  const at = image.lastIndexOf('@');
  return at >= 0 ? image.slice(at + 1) : undefined;
}

/** Services in an order where every dependency comes first; ties alphabetical so plans are stable. */
export function startOrder(services: Record<string, Service>): string[] {
  const names = Object.keys(services).sort();
  const done = new Set<string>();
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (name: string, path: string[]) => {
    if (done.has(name)) return;
    if (visiting.has(name)) throw new PlanError(`depends_on cycle: ${[...path, name].join(' → ')}`);
    visiting.add(name);
    for (const dep of Object.keys(services[name].dependsOn ?? {}).sort()) {
      if (services[dep]) visit(dep, [...path, name]);
    }
    visiting.delete(name);
    done.add(name);
    order.push(name);
  };
  for (const n of names) visit(n, []);
  return order;
}

interface ServicePlan {
  service: string;
  spec: Service;
  hash: string;
  name: string;
  /** unchanged: a matching container runs; start: a matching one exists stopped; create: none matches. */
  action: 'unchanged' | 'start' | 'create';
  target: string;
  context: ServiceContext;
}

export function plan(target: PlanTarget, observed: Observed, options: PlanOptions): Step[] {
  const { deviceId } = options;
  const desired = target.mode === 'apply' ? target.desired : target.current;
  const mine = observed.containers.filter((c) => c.labels[LABEL.device] === deviceId);
  const services = desired?.spec.services ?? {};
  const order = startOrder(services);
  const stableMs = options.stableMs ?? DEFAULT_STABLE_MS;
  const timeoutMs = desired?.spec.update?.healthTimeoutMs ?? options.defaultHealthTimeoutMs ?? 60_000;
  const strategy = options.strategy ?? desired?.spec.update?.strategy ?? 'download-then-swap';

  const kept = new Set<string>();
  const identities = desired ? serviceIdentities(deviceId, desired.spec, { root: options.secretsRoot ?? DEFAULT_SECRETS_ROOT, secrets: desired.secrets }) : {};
  const plans: ServicePlan[] = order.map((service) => {
    const spec = services[service];
    const { hash, name, context } = identities[service];
    const matching = mine.filter((c) => c.labels[LABEL.service] === service && c.labels[LABEL.configHash] === hash);
    const live = matching.find((c) => c.state === 'running' || c.state === 'restarting') ?? matching[0];
    if (live) kept.add(live.id);
    // A one-shot (restart: no) that ran is done: repairing drift must not run it again.
    const ranOnce = live?.state === 'exited' && spec.restart === 'no' && target.mode === 'restore';
    if (live && ranOnce) return { service, spec, hash, name, action: 'unchanged', target: live.id, context };
    if (live && (live.state === 'running' || live.state === 'restarting')) return { service, spec, hash, name, action: 'unchanged', target: live.id, context };
    if (live) return { service, spec, hash, name, action: 'start', target: live.id, context };
    return { service, spec, hash, name, action: 'create', target: name, context };
  });
  const stale = mine.filter((c) => !kept.has(c.id));
  const staleRunning = (c: ObservedContainer) => c.state === 'running' || c.state === 'restarting' || c.state === 'paused';
  const changed = plans.filter((p) => p.action !== 'unchanged');
  const presentVolumes = new Set(observed.volumes.map((v) => v.name));
  const missingVolumes = Object.keys(desired?.spec.volumes ?? {})
    .sort()
    .filter((v) => !presentVolumes.has(volumeName(deviceId, v)));

  const steps: Step[] = [];
  const stopStep = (c: ObservedContainer): Step => {
    const service = c.labels[LABEL.service] ?? '';
    const grace = services[service]?.stopGracePeriodMs;
    return grace !== undefined ? { kind: 'stop', service, container: c.id, graceMs: grace } : { kind: 'stop', service, container: c.id };
  };
  // Only a release has services, so only a release has containers to create.
  const creates = desired ? changed.filter((p) => p.action === 'create').map((p) => ({ ...p, release: { name: desired.name, version: desired.version, sequence: desired.sequence } })) : [];
  const images = [...new Set(creates.map((p) => p.spec.image))];
  const present = new Set(observed.images);
  const ensure: Step[] = images.length ? [{ kind: 'ensure-images', images, missing: images.filter((i) => !present.has(digestOf(i) ?? i)) }] : [];
  const networks = networkChanges(deviceId, desired?.spec ?? null, observed.networks ?? []);
  const prepare: Step[] = [
    ...missingVolumes.map((v): Step => ({ kind: 'create-volume', volume: v, name: volumeName(deviceId, v) })),
    ...networks.create.map((n): Step => ({ kind: 'create-network', ...n })),
    ...creates.map((p): Step => ({ kind: 'create', service: p.service, name: p.name, configHash: p.hash, release: p.release, spec: p.spec, context: p.context })),
  ];

  // A service_healthy dependency's health, or a service_completed_successfully one's exit 0, gates its dependents' start.
  const changedNames = new Set(changed.map((p) => p.service));
  const waited = new Set<string>();
  const startAll = (stopBefore: boolean): Step[] => {
    const out: Step[] = [];
    for (const p of changed) {
      // A dependent must not start before its healthy-gated dependency proved healthy; an unchanged
      // dependency was healthy when it was committed.
      const deps = Object.entries(p.spec.dependsOn ?? {})
        .filter(([d, c]) => c.condition !== 'service_started' && changedNames.has(d) && !waited.has(d))
        .map(([d, c]) => ({ service: d, container: plans.find((x) => x.service === d)!.target, ...(c.condition === 'service_completed_successfully' ? { completed: true as const } : {}) }));
      if (deps.length) {
        out.push({ kind: 'wait-healthy', targets: deps, timeoutMs, stableMs });
        deps.forEach((d) => waited.add(d.service));
      }
      if (stopBefore) for (const c of stale.filter((s) => s.labels[LABEL.service] === p.service && staleRunning(s))) out.push(stopStep(c));
      out.push({ kind: 'start', service: p.service, container: p.target });
    }
    const rest = changed.filter((p) => !waited.has(p.service));
    if (rest.length) out.push({ kind: 'wait-healthy', targets: rest.map((p) => ({ service: p.service, container: p.target })), timeoutMs, stableMs });
    return out;
  };

  const inDesired = (c: ObservedContainer) => changedNames.has(c.labels[LABEL.service] ?? '') ;
  if (strategy === 'stop-then-start') {
    // No room for two releases running side by side: everything old stops first, dependents before
    // their dependencies. The old containers and images stay until commit, so a rollback can return.
    const rank = new Map(order.map((s, i) => [s, i]));
    const toStop = stale.filter(staleRunning).sort((a, b) => (rank.get(b.labels[LABEL.service] ?? '') ?? -1) - (rank.get(a.labels[LABEL.service] ?? '') ?? -1));
    steps.push(...toStop.map(stopStep), ...ensure, ...prepare, ...startAll(false));
  } else {
    // Download first, swap after: nothing old stops until every new image is local.
    const orphans = stale.filter((c) => staleRunning(c) && !inDesired(c));
    steps.push(...ensure, ...prepare, ...orphans.map(stopStep), ...startAll(true));
  }

  const needsCommit = target.mode === 'apply' && (steps.length > 0 || stale.length > 0 || target.committedSequence !== target.desired.sequence);
  if (target.mode === 'apply' && needsCommit) steps.push({ kind: 'commit', sequence: target.desired.sequence, release: releaseLabel(target.desired) });
  // Old containers go only now: until commit they are the rollback path.
  for (const c of stale) {
    if (staleRunning(c) && !steps.some((s) => s.kind === 'stop' && s.container === c.id)) steps.push(stopStep(c));
    steps.push({ kind: 'remove', service: c.labels[LABEL.service] ?? '', container: c.id });
  }
  // Unused networks go after the containers that used them, and only once a release is committed.
  if (needsCommit) steps.push(...networks.remove.map((name): Step => ({ kind: 'remove-network', name })));
  if (needsCommit && changed.length > 0) {
    const keep = new Set([...Object.values(services).map((s) => s.image), ...(options.keepImages ?? [])]);
    steps.push({ kind: 'prune-images', keep: [...keep].sort() });
  }
  return steps;
}
