import { z } from 'zod';
import { eachVia, expected, fail, show, size, via } from './schema-base.js';
import { parseCapability, parseDevice, parseMode, parseSecurityOpt, parseSignal, parseTmpfsShort, ULIMITS } from './forms.js';
import type { Logging, Service, TmpfsMount, Ulimit } from './model.js';

/**
 * The keys that reach the gateway's hardware and kernel (devices, capabilities, namespaces,
 * sysctls, limits), with Compose's forms. What each of them grants is computed in privileges.ts.
 */

const capabilities = z.array(z.string(), expected('a list of capability names like [NET_ADMIN]')).transform(eachVia(parseCapability));

const sysctls = z
  .union([
    z.record(z.string(), z.union([z.string(), z.number(), z.boolean()], expected('a value'))).transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]))),
    z.array(z.string()).transform((items, ctx) => {
      const out: Record<string, string> = {};
      items.forEach((item, i) => {
        const eq = item.indexOf('=');
        if (eq <= 0) ctx.addIssue({ code: 'custom', message: `expected NAME=VALUE, got ${show(item)}`, path: [i] });
        else out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
      });
      return out;
    }),
  ], expected('a map of name: value or a list of name=value'))
  .superRefine((m, ctx) => {
    for (const k of Object.keys(m)) if (!/^[a-z0-9_]+(?:[./][a-z0-9_-]+)+$/i.test(k)) ctx.addIssue({ code: 'custom', message: `${show(k)} is not a sysctl name like net.ipv4.ip_forward`, path: [k] });
  });

const ulimitValue = z.union(
  [
    z.number().int().transform((n): Ulimit => ({ soft: n, hard: n })),
    z.strictObject({ soft: z.number().int(), hard: z.number().int() }).transform((u, ctx): Ulimit => (u.soft > u.hard ? fail(ctx, `soft ${u.soft} is above hard ${u.hard}`) : u)),
  ],
  expected('a number or {soft, hard}'),
);
const ulimits = z.partialRecord(z.enum(ULIMITS, expected(`one of ${ULIMITS.join(', ')}`)), ulimitValue, expected('a map of name: limit'));

const tmpfsLong = z.string().transform(via(parseTmpfsShort));
const tmpfs = z.union([tmpfsLong.transform((t) => [t]), z.array(z.string(), expected('a path')).transform(eachVia(parseTmpfsShort))], expected('a path like /run[:size=64m] or a list of them'));

const LOG_DRIVERS = ['json-file', 'local', 'journald', 'none'] as const;
const logging = z
  .strictObject({
    driver: z.enum(LOG_DRIVERS, expected('json-file, local, journald or none (the drivers that keep logs on the gateway or nowhere)')).optional(),
    options: z
      .strictObject({
        'max-size': size.optional(),
        'max-file': z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d*$/)], expected('a positive whole number')).transform(Number).optional(),
      })
      .optional(),
  })
  .transform((l, ctx): Logging => {
    const driver = l.driver ?? 'json-file';
    const out: Logging = { driver };
    const o = l.options ?? {};
    if ((o['max-size'] !== undefined || o['max-file'] !== undefined) && driver !== 'json-file' && driver !== 'local') {
      return fail(ctx, `max-size and max-file apply to the json-file and local drivers, not ${driver}`, ['options']);
    }
    if (o['max-size'] !== undefined) out.maxSizeBytes = o['max-size'];
    if (o['max-file'] !== undefined) out.maxFile = o['max-file'];
    return out;
  });

export const hostShape = {
  devices: z.array(z.string(), expected('a list like ["/dev/ttyUSB0:/dev/zigbee"]')).transform(eachVia(parseDevice)).optional(),
  group_add: z.array(z.union([z.string().min(1), z.number().int().nonnegative()], expected('a group name or number')).transform(String), expected('a list of groups like [dialout]')).optional(),
  cap_add: capabilities.optional(),
  cap_drop: capabilities.optional(),
  privileged: z.boolean(expected('true or false')).optional(),
  tmpfs: tmpfs.optional(),
  sysctls: sysctls.optional(),
  ulimits: ulimits.optional(),
  shm_size: size.optional(),
  pid: z.literal('host', { error: (iss) => `only pid: host is supported (sharing another container's PID namespace is not), got ${show(iss.input)}` }).optional(),
  ipc: z
    .string(expected('host, private, shareable, none or service:NAME'))
    .refine((v) => ['host', 'private', 'shareable', 'none'].includes(v) || /^service:.+/.test(v), { error: (iss) => `expected host, private, shareable, none or service:NAME, got ${show(iss.input)}` })
    .optional(),
  security_opt: z.array(z.string(), expected('a list like [no-new-privileges:true]')).transform(eachVia(parseSecurityOpt)).optional(),
  read_only: z.boolean(expected('true or false')).optional(),
  init: z.boolean(expected('true or false')).optional(),
  stop_signal: z.string(expected('a signal like SIGTERM')).transform(via(parseSignal)).optional(),
  mem_reservation: size.optional(),
  cpuset: z.union([z.string(), z.number()], expected('CPUs like 0-3 or 0,1')).transform(String).refine((s) => /^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(s), { error: (iss) => `expected CPUs like 0-3 or 0,1, got ${show(iss.input)}` }).optional(),
  logging: logging.optional(),
  platform: z.string(expected('a platform like linux/arm64')).regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, { error: (iss) => `expected a platform like linux/arm64 or linux/arm/v7, got ${show(iss.input)}` }).optional(),
  pull_policy: z.enum(['always', 'never', 'missing', 'if_not_present', 'build'], expected('always, never, missing or if_not_present')).optional(),
};

type HostInput = { [K in keyof typeof hostShape]?: z.output<(typeof hostShape)[K]> };

/** The host keys of one service in their normalized form (unset keys left out). */
export function toHostFields(s: HostInput): Partial<Service> {
  const nonEmpty = <T>(v: T[] | undefined) => (v && v.length ? v : undefined);
  const nonEmptyMap = <T>(v: Record<string, T> | undefined) => (v && Object.keys(v).length ? v : undefined);
  return {
    devices: nonEmpty(s.devices),
    groupAdd: nonEmpty(s.group_add),
    capAdd: nonEmpty(s.cap_add && [...new Set(s.cap_add)]),
    capDrop: nonEmpty(s.cap_drop && [...new Set(s.cap_drop)]),
    privileged: s.privileged ? true : undefined,
    tmpfs: nonEmpty(s.tmpfs),
    sysctls: nonEmptyMap(s.sysctls),
    ulimits: nonEmptyMap(s.ulimits),
    shmSizeBytes: s.shm_size,
    pid: s.pid,
    ipc: s.ipc,
    securityOpt: nonEmpty(s.security_opt),
    readOnly: s.read_only ? true : undefined,
    init: s.init === false ? false : undefined,
    stopSignal: s.stop_signal,
    memoryReservationBytes: s.mem_reservation,
    cpuset: s.cpuset,
    logging: s.logging,
    platform: s.platform,
  };
}

/** Long-form `volumes` entries of type tmpfs: `{type: tmpfs, target, tmpfs: {size, mode}}`. */
export const tmpfsOptions = z.strictObject({ size: size.optional(), mode: z.union([z.string(), z.number()]).transform(via(parseMode)).optional() });

export function tmpfsMount(target: string, o: z.output<typeof tmpfsOptions> | undefined): TmpfsMount {
  const t: TmpfsMount = { target };
  if (o?.size !== undefined) t.sizeBytes = o.size;
  if (o?.mode !== undefined) t.mode = o.mode;
  return t;
}

