import type { Manifest, Service } from './model.js';
import type { RawIssue } from './semantics.js';

type Declared = Record<string, { driver?: 'bridge'; internal?: boolean } | null>;

const SHARED = /^service:(.+)$/;

/** What a network mode forbids, as Docker refuses it ("conflicting options"), said before a gateway tries. */
const CONFLICTS: [keyof Service, string, (mode: string) => boolean][] = [
  ['ports', 'ports', (m) => m === 'host' || m === 'none' || SHARED.test(m)],
  ['hostname', 'hostname', (m) => m === 'host' || SHARED.test(m)],
  ['dns', 'dns', (m) => m === 'host' || SHARED.test(m)],
  ['dnsSearch', 'dns_search', (m) => m === 'host' || SHARED.test(m)],
  ['extraHosts', 'extra_hosts', (m) => SHARED.test(m)],
];

/**
 * The networking rules that span services, on the normalized form: every network a service joins
 * is declared (`default` always is), `service:NAME` names another service of the manifest (and
 * starts after it, as in Compose), and keys the network mode makes meaningless are refused. Returns
 * the networks the release must create: those some service joins.
 */
export function checkNetworking(m: Manifest, declared: Declared): { issues: RawIssue[]; networks?: Manifest['networks'] } {
  const issues: RawIssue[] = [];
  const used = new Set<string>();
  for (const [name, s] of Object.entries(m.services)) {
    const at = (...rest: (string | number)[]) => ['services', name, ...rest];
    for (const net of Object.keys(s.networks ?? {})) {
      if (net === 'default' || Object.hasOwn(declared, net)) used.add(net);
      else issues.push({ path: at('networks', net), message: `network ${JSON.stringify(net)} is not declared under top-level networks (add networks: {${net}: {}})` });
    }
    for (const [key, value] of [['network_mode', s.networkMode], ['ipc', s.ipc]] as const) {
      const peer = value === undefined ? undefined : SHARED.exec(value)?.[1];
      if (peer === undefined) continue;
      if (peer === name) issues.push({ path: at(key), message: `${JSON.stringify(name)} cannot share its own namespace` });
      else if (!Object.hasOwn(m.services, peer)) issues.push({ path: at(key), message: `unknown service ${JSON.stringify(peer)} (services: ${Object.keys(m.services).join(', ')})` });
      else if (m.services[peer].networkMode === `service:${name}` || m.services[peer].ipc === `service:${name}`) issues.push({ path: at(key), message: `${name} and ${peer} share each other's namespace: one of them must own it` });
      else if (!s.dependsOn[peer]) s.dependsOn[peer] = { condition: 'service_started' };
    }
    for (const [field, key, forbidden] of CONFLICTS) {
      if (s[field] !== undefined && forbidden(s.networkMode)) {
        issues.push({ path: at(key), message: `${key} has no effect with network_mode: ${s.networkMode} (Docker refuses the combination)${key === 'ports' && s.networkMode === 'host' ? '; the service listens on the gateway directly' : ''}` });
      }
    }
  }
  if (!used.size) return { issues };
  const networks = Object.fromEntries(
    [...used].sort().map((n): [string, { internal?: true }] => [n, declared[n]?.internal ? { internal: true } : {}]),
  );
  return { issues, networks };
}
