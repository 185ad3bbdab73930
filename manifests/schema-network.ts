import { z } from 'zod';
import { eachVia, expected, fail, show, stringOrList, via } from './schema-base.js';
import { bindPorts, extraHost, hostAddress, parseExtraHost, parsePortShort, portRange } from './forms.js';
import type { ExposedPort, NetworkAttachment, PortBinding } from './model.js';

/** Compose's networking keys: ports, expose, networks and aliases, network_mode, names and DNS. */

export const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const protocol = z.enum(['tcp', 'udp'], expected('tcp or udp'));

const portLong = z
  .strictObject({
    target: z.union([z.number(), z.string()], expected('a container port')).transform(String),
    published: z.union([z.number(), z.string()], expected('a host port or a range like 8000-8010')).transform(String).optional(),
    host_ip: z.string(expected('an IP address')).transform(via(hostAddress)).optional(),
    protocol: protocol.optional(),
    mode: z.literal('host', { error: (iss) => `only mode: host is supported (ingress is Swarm's routing mesh), got ${show(iss.input)}` }).optional(),
  })
  .transform((p, ctx): PortBinding[] => {
    const targets = portRange(p.target, 'container port');
    if ('error' in targets) return fail(ctx, targets.error, ['target']);
    let published: number[] | undefined;
    if (p.published !== undefined && p.published !== '') {
      const r = portRange(p.published, 'host port');
      if ('error' in r) return fail(ctx, r.error, ['published']);
      published = r.value;
    }
    const b = bindPorts(targets.value, published, p.host_ip, p.protocol ?? 'tcp', `${p.published ?? ''}:${p.target}`);
    return 'error' in b ? fail(ctx, b.error) : b.value;
  });

const ports = z
  .array(
    z.union(
      [z.string().transform(via(parsePortShort)), z.number().transform((n) => String(n)).transform(via(parsePortShort)), portLong],
      expected('a port like "1883:1883" or {target, published, host_ip, protocol}'),
    ),
    expected('a list like ["1883:1883", "127.0.0.1:8080:80/tcp"]'),
  )
  .transform((lists, ctx) => {
    const all = lists.flat();
    const seen = new Set<string>();
    for (const b of all) {
      if (b.published === undefined) continue;
      const key = `${b.hostIp ?? '*'}:${b.published}/${b.protocol}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `host port ${b.published}/${b.protocol} is published twice` });
      seen.add(key);
    }
    return all;
  });

const exposeEntry = z.union([z.number().transform(String), z.string()], expected('a port like 8080 or 8080/udp')).transform((s, ctx): ExposedPort[] => {
  const [range, proto = 'tcp', ...rest] = s.split('/');
  if (rest.length || (proto !== 'tcp' && proto !== 'udp')) return fail(ctx, `expected a port like 8080, 8080-8090 or 8080/udp, got ${show(s)}`);
  const r = portRange(range, 'port');
  return 'error' in r ? fail(ctx, r.error) : r.value.map((port) => ({ port, protocol: proto }));
});

const aliases = z.array(z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/, { error: (iss) => `alias ${show(iss.input)} is not a host name` }), expected('a list of names'));
const networkName = z.string().regex(NETWORK_NAME_RE, { error: (iss) => `network name ${show(iss.input)} must be letters, digits, _ . - (starting with a letter or digit)` });
const serviceNetworks = z.union(
  [
    z.array(networkName).transform((names) => Object.fromEntries(names.map((n): [string, NetworkAttachment] => [n, { aliases: [] }]))),
    z.record(networkName, z.union([z.null(), z.strictObject({ aliases: aliases.optional() })], expected('{aliases: [...]} or nothing'))).transform((m) =>
      Object.fromEntries(Object.entries(m).map(([n, a]): [string, NetworkAttachment] => [n, { aliases: a?.aliases ?? [] }])),
    ),
  ],
  expected('a list of network names or a map of name: {aliases}'),
);

const hostName = z.string(expected('a host name')).regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, { error: (iss) => `expected a host name (letters, digits, - and .), got ${show(iss.input)}` });

const extraHosts = z.union(
  [
    z.array(z.string()).transform(eachVia(parseExtraHost)),
    z.record(z.string(), z.union([z.string(), z.array(z.string())])).transform((m, ctx) =>
      Object.entries(m).flatMap(([host, ips]) =>
        (Array.isArray(ips) ? ips : [ips]).flatMap((ip) => {
          const r = extraHost(host, ip);
          if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error, path: [host] });
          return 'error' in r ? [] : [r.value];
        }),
      ),
    ),
  ],
  expected('a list like ["gateway:192.0.2.1"] or a map of host: ip'),
);

const dnsServers = stringOrList.transform((list, ctx) =>
  list.flatMap((s, i) => {
    const r = hostAddress(s);
    if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error, path: [i] });
    return 'error' in r ? [] : [r.value];
  }),
);

export const networkShape = {
  network_mode: z
    .string(expected('host, none, bridge or service:NAME'))
    .refine((v) => ['host', 'none', 'bridge'].includes(v) || /^service:.+/.test(v), {
      error: (iss) =>
        /^container:/.test(String(iss.input))
          ? `container:… is not supported: Berth names containers itself; use service:NAME for a service of this manifest`
          : `expected host, none, bridge or service:NAME, got ${show(iss.input)}`,
    })
    .optional(),
  networks: serviceNetworks.optional(),
  ports: ports.optional(),
  expose: z.array(exposeEntry, expected('a list of ports')).transform((l) => l.flat()).optional(),
  hostname: hostName.optional(),
  container_name: hostName.optional(),
  extra_hosts: extraHosts.optional(),
  dns: dnsServers.optional(),
  dns_search: stringOrList.optional(),
};

/** Top-level `networks`: user-defined bridge networks that Berth creates per release. */
export const topNetworks = z.record(
  networkName,
  z.union(
    [
      z.null(),
      z.strictObject({
        driver: z.literal('bridge', { error: (iss) => `only driver: bridge is supported, got ${show(iss.input)}` }).optional(),
        internal: z.boolean().optional(),
      }),
    ],
    expected('{} or nothing, {driver: bridge} or {internal: true}'),
  ),
);
