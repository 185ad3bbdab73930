import { parseVolumeShort } from './forms.js';
import { secretIssues } from './secrets.js';

/**
 * Rules that span keys (a mount names a declared volume, a dependency names a service, no cycles,
 * one memory limit, networks or a network mode). They read the raw document defensively and always run, even when the schema
 * found other problems, so one pass over a file reports all of them.
 */
export interface RawIssue {
  path: (string | number)[];
  message: string;
}

type Raw = Record<string, unknown>;
const isMap = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

export function semanticIssues(doc: unknown): RawIssue[] {
  if (!isMap(doc) || !isMap(doc.services)) return [];
  const issues: RawIssue[] = [];
  const services = doc.services;
  const declared = new Set(isMap(doc.volumes) ? Object.keys(doc.volumes) : []);
  const graph = new Map<string, string[]>();

  for (const [name, svc] of Object.entries(services)) {
    if (!isMap(svc)) continue;
    const at = (...rest: (string | number)[]) => ['services', name, ...rest];

    if (Array.isArray(svc.volumes)) {
      svc.volumes.forEach((m, i) => {
        let source: string | undefined;
        if (typeof m === 'string') {
          const v = parseVolumeShort(m);
          if ('value' in v && v.value.kind === 'volume') source = v.value.mount.source;
        } else if (isMap(m) && m.type === 'volume' && typeof m.source === 'string') {
          source = m.source;
        }
        if (source !== undefined && !declared.has(source)) {
          issues.push({ path: at('volumes', i), message: `volume ${JSON.stringify(source)} is not declared under top-level volumes (add volumes: {${source}: {}})` });
        }
      });
    }

    const deps: [string, (string | number)[]][] = [];
    if (Array.isArray(svc.depends_on)) svc.depends_on.forEach((d, i) => typeof d === 'string' && deps.push([d, at('depends_on', i)]));
    else if (isMap(svc.depends_on)) for (const d of Object.keys(svc.depends_on)) deps.push([d, at('depends_on', d)]);
    const edges: string[] = [];
    for (const [dep, path] of deps) {
      if (dep === name) issues.push({ path, message: `${JSON.stringify(name)} cannot depend on itself` });
      else if (!Object.hasOwn(services, dep)) issues.push({ path, message: `unknown service ${JSON.stringify(dep)} (services: ${Object.keys(services).join(', ')})` });
      else if (edges.includes(dep)) issues.push({ path, message: `${JSON.stringify(dep)} is listed twice` });
      else edges.push(dep);
    }
    graph.set(name, edges);

    const limits = isMap(svc.deploy) && isMap(svc.deploy.resources) && isMap(svc.deploy.resources.limits) ? svc.deploy.resources.limits : {};
    if (svc.mem_limit !== undefined && limits.memory !== undefined) issues.push({ path: at('mem_limit'), message: 'conflicts with deploy.resources.limits.memory; set one of them' });
    if (svc.cpus !== undefined && limits.cpus !== undefined) issues.push({ path: at('cpus'), message: 'conflicts with deploy.resources.limits.cpus; set one of them' });
    const reservations = isMap(svc.deploy) && isMap(svc.deploy.resources) && isMap(svc.deploy.resources.reservations) ? svc.deploy.resources.reservations : {};
    if (svc.mem_reservation !== undefined && reservations.memory !== undefined) issues.push({ path: at('mem_reservation'), message: 'conflicts with deploy.resources.reservations.memory; set one of them' });
    if (svc.network_mode !== undefined && svc.networks !== undefined) issues.push({ path: at('networks'), message: `conflicts with network_mode: ${String(svc.network_mode)}; a service either joins networks or uses a network mode` });
  }

  issues.push(...secretIssues(doc));
  for (const cycle of findCycles(graph)) {
    issues.push({ path: ['services', cycle[0], 'depends_on'], message: `dependency cycle: ${[...cycle, cycle[0]].join(' → ')}` });
  }
  return issues;
}

/** Each elementary cycle reachable by depth-first search, reported once, starting at its first-declared member. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (n: string) => {
    state.set(n, 'active');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 'active') cycles.push(stack.slice(stack.indexOf(d)));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return cycles;
}
