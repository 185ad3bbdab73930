import type { Manifest } from '../../manifests/model.js';
import { networkName } from './spec.js';

/** A network of this device as the engine lists it (filtered by the `berth.device` label). */
export interface ObservedNetwork {
  name: string;
  labels: Record<string, string>;
}

/**
 * The networks a release needs that the engine lacks (created before the containers), and this
 * device's networks it no longer needs (removed after commit, so a rollback still finds them).
 */
export function networkChanges(deviceId: string, desired: Manifest | null, observed: ObservedNetwork[]): { create: { network: string; name: string; internal: boolean }[]; remove: string[] } {
  const present = new Set(observed.map((n) => n.name));
  const wanted = new Map(Object.entries(desired?.networks ?? {}).map(([net, def]) => [networkName(deviceId, desired!, net), { net, internal: def.internal === true }]));
  const create = [...wanted]
    .filter(([name]) => !present.has(name))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, w]) => ({ network: w.net, name, internal: w.internal }));
  const remove = observed
    .filter((n) => !wanted.has(n.name))
    .map((n) => n.name)
    .sort();
  return { create, remove };
}
