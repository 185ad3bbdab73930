import { z } from 'zod';
import { parseImageRef } from './image-ref.js';
import type { BindMount, DependsCondition, Healthcheck, Manifest, NetworkMode, Service, TmpfsMount, VolumeMount } from './model.js';
import { MANIFEST_NAME_RE, RELEASE_VERSION_RE } from '../common/grammar.js';
import { duration, expected, fail, show, size } from './schema-base.js';
import { hostShape, toHostFields } from './schema-host.js';
import { mounts } from './schema-mounts.js';
import { networkShape, topNetworks } from './schema-network.js';
import { VOLUME_NAME_RE } from './forms.js';
import { parseNanoCpus, splitShellWords } from './compose-syntax.js';
import { checkNetworking } from './networking.js';
import { serviceSecrets, topSecrets } from './secrets.js';

/**
 * The Berth manifest as authors write it (Compose plus `name` and `version`) and as every other
 * part reads it (the normalized `Manifest` of model.ts). The input schema transforms to the
 * normalized form, so two spellings of one file normalize, canonicalize and digest identically.
 * Unknown keys are refused (strict objects); cross-service rules live in semantics.ts and
 * networking.ts. The host and network keys are in schema-host.ts and schema-network.ts.
 */

// A manifest's name and version are the two halves of a release reference (common/grammar.ts).
export const NAME_RE = MANIFEST_NAME_RE;
export const VERSION_RE = RELEASE_VERSION_RE;
export const SERVICE_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// __proto__ is refused: it cannot survive as a key of a plain object (see parse.ts protoKeys).
const ENV_NAME_RE = /^(?!__proto__$)[^=\s]+$/;

export const DEFAULTS = {
  restart: 'no',
  strategy: 'download-then-swap',
  healthTimeoutMs: 60_000,
  healthcheck: { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 },
} as const;

export { show };

const CPUS_WHAT = 'a CPU count like "0.5" or 2';
const cpus = z.union([z.string(), z.number()], expected(CPUS_WHAT)).meta({ description: 'CPUs: "0.5" or 2' }).transform((v, ctx) => {
  const nano = parseNanoCpus(v);
  return nano === undefined ? fail(ctx, `expected ${CPUS_WHAT}, got ${show(v)}`) : nano;
});

const image = z.string(expected('an image reference like registry.example.com/acme/app:1.0')).meta({ description: 'registry/repository:tag or registry/repository@sha256:<64 hex>; pinned by digest at publish time' }).superRefine((ref, ctx) => {
  try {
    parseImageRef(ref);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${(err as Error).message}; expected repository[:tag][@sha256:<64 hex>]` });
  }
});

const command = z
  .union([z.string(), z.array(z.string())], expected('a string or a list of strings'))
  .transform((v, ctx) => {
    if (Array.isArray(v)) return v;
    const split = splitShellWords(v);
    return 'error' in split ? fail(ctx, `cannot split ${show(v)} into words: ${split.error}`) : split.words;
  });

const scalarValue = z.union([z.string(), z.number(), z.boolean()], {
  error: (iss) =>
    iss.input === null || iss.input === undefined
      ? 'has no value: Berth has no host environment to take it from; write the value'
      : `expected a string, number or boolean, got ${show(iss.input)}`,
});

/** `environment`/`labels` as a map or a `KEY=VAL` list → a string map (numbers and booleans stringified). */
function keyValues(what: 'environment variable' | 'label', bareKey: 'error' | 'empty') {
  const key = z.string().regex(ENV_NAME_RE, { error: (iss) => `${what} name ${show(iss.input)} must be non-empty without = or blanks` });
  const map = z.record(key, scalarValue).transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])));
  const list = z.array(z.string()).transform((items, ctx) => {
    // A Map, not an object: names like __proto__ or constructor are ordinary variable names here.
    const out = new Map<string, string>();
    items.forEach((item, i) => {
      const eq = item.indexOf('=');
      const k = eq < 0 ? item : item.slice(0, eq);
      if (!ENV_NAME_RE.test(k)) return fail(ctx, `${what} name ${show(k)} must be non-empty without = or blanks`, [i]);
      if (eq < 0 && bareKey === 'error') return fail(ctx, `${show(item)} has no value: Berth has no host environment to take it from; write ${item}=VALUE`, [i]);
      if (out.has(k)) return fail(ctx, `${what} ${show(k)} is set twice`, [i]);
      out.set(k, eq < 0 ? '' : item.slice(eq + 1));
    });
    return Object.fromEntries(out);
  });
  return z.union([map, list], expected(`a map of NAME: value or a list of NAME=value`));
}

const healthcheck = z
  .strictObject({
    test: z
      .union([z.string(), z.array(z.string())], expected('a command string or a list like ["CMD", "wget", …]'))
      .superRefine((t, ctx) => {
        if (typeof t === 'string' || isCheckCommand(t)) return;
        ctx.addIssue({ code: 'custom', message: `expected ["CMD", program, args…], ["CMD-SHELL", "command"] or ["NONE"], got [${t.map((w) => JSON.stringify(w)).join(', ')}]` });
      })
      .optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    start_period: duration.optional(),
    retries: z.number().int().positive(expected('a positive whole number')).optional(),
    disable: z.boolean().optional(),
  })
  .transform((h, ctx): Healthcheck => {
    const timing = {
      intervalMs: h.interval ?? DEFAULTS.healthcheck.intervalMs,
      timeoutMs: h.timeout ?? DEFAULTS.healthcheck.timeoutMs,
      retries: h.retries ?? DEFAULTS.healthcheck.retries,
      startPeriodMs: h.start_period ?? DEFAULTS.healthcheck.startPeriodMs,
    };
    if (h.disable) {
      if (h.test !== undefined) return fail(ctx, 'disable: true and test contradict each other; keep one', ['disable']);
      return { test: ['NONE'], ...timing };
    }
    if (h.test === undefined) return fail(ctx, 'required: expected the check command (Berth does not inherit the image\'s healthcheck piecemeal); or disable: true', ['test']);
    return { test: typeof h.test === 'string' ? ['CMD-SHELL', h.test] : h.test, ...timing };
  });

/** Docker's healthcheck test forms; anything else would be run by Docker as something the author did not mean. */
function isCheckCommand(t: string[]): boolean {
  const [kind, ...args] = t;
  return (kind === 'NONE' && args.length === 0) || (kind === 'CMD' && args.length > 0) || (kind === 'CMD-SHELL' && args.length === 1);
}

const condition = z.enum(['service_started', 'service_healthy', 'service_completed_successfully']);
const dependsOn = z.union(
  [
    z.array(z.string()).transform((names) => Object.fromEntries(names.map((n) => [n, { condition: 'service_started' as DependsCondition }]))),
    z
      .record(z.string(), z.strictObject({ condition: condition.optional(), required: z.literal(true, { error: 'required: false is not supported: every service of a manifest runs' }).optional() }))
      .transform((m) => Object.fromEntries(Object.entries(m).map(([n, d]) => [n, { condition: d.condition ?? ('service_started' as DependsCondition) }]))),
  ],
  expected('a list of service names or a map of name: {condition}'),
);

const RESTART_WHAT = 'no, always, on-failure, on-failure:N or unless-stopped';
const restart = z.string(expected(RESTART_WHAT)).transform((v, ctx): { restart: Service['restart']; max?: number } => {
  if (v === 'no' || v === 'always' || v === 'on-failure' || v === 'unless-stopped') return { restart: v };
  const m = /^on-failure:(\d+)$/.exec(v);
  if (m && Number(m[1]) > 0) return { restart: 'on-failure', max: Number(m[1]) };
  return fail(ctx, `expected ${RESTART_WHAT}, got ${show(v)}`);
});

const serviceShape = {
  image,
  command: command.optional(),
  entrypoint: command.optional(),
  environment: keyValues('environment variable', 'error').optional(),
  restart: restart.optional(),
  volumes: mounts.optional(),
  healthcheck: healthcheck.optional(),
  depends_on: dependsOn.optional(),
  deploy: z
    .strictObject({
      resources: z
        .strictObject({
          limits: z.strictObject({ memory: size.optional(), cpus: cpus.optional() }).optional(),
          reservations: z.strictObject({ memory: size.optional() }).optional(),
        })
        .optional(),
    })
    .optional(),
  mem_limit: size.optional(),
  cpus: cpus.optional(),
  user: z.union([z.string(), z.number().int().nonnegative()], expected('a user name or uid[:gid]')).transform(String).optional(),
  working_dir: z.string().regex(/^\//, { error: (iss) => `expected an absolute path, got ${show(iss.input)}` }).optional(),
  labels: keyValues('label', 'empty').optional(),
  stop_grace_period: duration.optional(),
  secrets: serviceSecrets.optional(),
  ...hostShape,
  ...networkShape,
};

export const serviceInputSchema = z.strictObject(serviceShape);
type ServiceInput = z.output<typeof serviceInputSchema>;

function networkModeOf(s: ServiceInput): NetworkMode {
  if (s.network_mode !== undefined) return s.network_mode as NetworkMode;
  return 'networks';
}

function toService(s: ServiceInput): Service {
  const resources = s.deploy?.resources;
  const all = s.volumes ?? [];
  const volumes: VolumeMount[] = [];
  const binds: BindMount[] = [];
  const tmpfs: TmpfsMount[] = [...(s.tmpfs ?? [])];
  for (const m of all) {
    if (m.kind === 'volume') volumes.push(m.mount);
    else if (m.kind === 'bind') binds.push(m.mount);
    else tmpfs.push(m.mount);
  }
  const networkMode = networkModeOf(s);
  let networks: Service['networks'];
  if (networkMode === 'networks') {
    networks = s.networks ?? { default: { aliases: [] } };
    if (s.container_name) networks = Object.fromEntries(Object.entries(networks).map(([n, a]) => [n, { aliases: [...new Set([...a.aliases, s.container_name!])] }]));
  }
  const hostnameFromName = s.container_name && (networkMode === 'networks' || networkMode === 'none' || networkMode === 'bridge') ? s.container_name : undefined;
  const service: Service = {
    image: s.image.trim(),
    environment: s.environment ?? {},
    networkMode,
    restart: s.restart?.restart ?? DEFAULTS.restart,
    volumes,
    dependsOn: s.depends_on ?? {},
    labels: s.labels ?? {},
  };
  // Optional members are left out rather than set to undefined so the object matches its canonical form.
  const optional: Partial<Service> = {
    command: s.command,
    entrypoint: s.entrypoint,
    networks,
    restartMaxRetries: s.restart?.max,
    binds: binds.length ? binds : undefined,
    healthcheck: s.healthcheck,
    memoryBytes: s.mem_limit ?? resources?.limits?.memory,
    nanoCpus: s.cpus ?? resources?.limits?.cpus,
    user: s.user,
    workingDir: s.working_dir,
    stopGracePeriodMs: s.stop_grace_period,
    ...toHostFields(s),
    tmpfs: tmpfs.length ? tmpfs : undefined,
    memoryReservationBytes: s.mem_reservation ?? resources?.reservations?.memory,
    hostname: s.hostname ?? hostnameFromName,
    extraHosts: s.extra_hosts?.length ? s.extra_hosts : undefined,
    dns: s.dns?.length ? s.dns : undefined,
    dnsSearch: s.dns_search?.length ? s.dns_search : undefined,
    ports: s.ports?.length ? s.ports : undefined,
    expose: s.expose?.length ? s.expose : undefined,
    secrets: s.secrets?.length ? s.secrets : undefined,
  };
  const target = service as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) target[k] = v;
  return service;
}

const xBerth = z.strictObject({
  update: z
    .strictObject({
      strategy: z.enum(['download-then-swap', 'stop-then-start'], expected('download-then-swap or stop-then-start')).optional(),
      health_timeout: duration.optional(),
    })
    .optional(),
});

/** Compose's obsolete file-format `version: "3.8"` (or 3.8), which Berth reads as the release version. */
function versionMessage(input: unknown): string {
  if ((typeof input === 'string' || typeof input === 'number') && /^\d(\.\d+)?$/.test(String(input))) {
    return `${show(input)} looks like Compose's obsolete file-format version; Berth's version is the release's own version: write it as MAJOR.MINOR.PATCH, e.g. version: "1.0.0"`;
  }
  return `expected a release version like 1.4.0 or 2.0.0-rc.1, got ${show(input)}`;
}

export const manifestInputSchema = z.strictObject({
  name: z.string(expected('a name like weather-station')).regex(NAME_RE, {
    error: (iss) => `expected a name of lowercase letters, digits and hyphens (at most 63, like weather-station), got ${show(iss.input)}`,
  }),
  version: z.string({ error: (iss) => (iss.input === undefined ? 'required: expected a release version like 1.4.0 (quote it in YAML if it looks like a number)' : versionMessage(iss.input)) }).regex(VERSION_RE, {
    error: (iss) => versionMessage(iss.input),
  }),
  services: z
    .record(
      z.string().regex(SERVICE_NAME_RE, { error: (iss) => `service name ${show(iss.input)} must be letters, digits, _ . - (starting with a letter or digit)` }),
      serviceInputSchema.transform(toService),
    )
    .refine((m) => Object.keys(m).length > 0, 'expected at least one service'),
  volumes: z
    .record(
      z.string().regex(VOLUME_NAME_RE, { error: (iss) => `volume name ${show(iss.input)} must be letters, digits, _ . - (starting with a letter or digit)` }),
      z.union([z.null(), z.strictObject({})], expected('{} or nothing (driver options are not supported)')),
    )
    .optional(),
  networks: topNetworks.optional(),
  secrets: topSecrets.optional(),
  'x-berth': xBerth.optional(),
});

/** The input schema piped into the normalized form; `safeParse` of a document's value gives a `Manifest`. */
export const manifestSchema = manifestInputSchema.transform((m, ctx): Manifest => {
  const manifest: Manifest = {
    name: m.name,
    version: m.version,
    services: m.services,
    volumes: Object.fromEntries(Object.keys(m.volumes ?? {}).map((v) => [v, {}])),
    update: {
      strategy: m['x-berth']?.update?.strategy ?? DEFAULTS.strategy,
      healthTimeoutMs: m['x-berth']?.update?.health_timeout ?? DEFAULTS.healthTimeoutMs,
    },
  };
  const checked = checkNetworking(manifest, m.networks ?? {});
  for (const issue of checked.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  if (checked.networks) manifest.networks = checked.networks;
  if (m.secrets && Object.keys(m.secrets).length) manifest.secrets = m.secrets;
  return manifest;
});

export { normalizedManifestSchema, normalizedServiceSchema, pinnedManifestSchema } from './normalized.js';
export { UNSUPPORTED_WHY } from './refusals.js';
