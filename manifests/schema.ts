import { z } from 'zod';
import { parseImageRef } from './image-ref.js';
import type { DependsCondition, Healthcheck, Manifest, Service, VolumeMount } from './model.js';
import { durationMsSchema as duration, MANIFEST_NAME_RE, RELEASE_VERSION_RE, sizeBytesSchema as memory } from '../common/grammar.js';
import { parseNanoCpus, splitShellWords, splitVolumeShort, isBindSource, VOLUME_NAME_RE } from './compose-syntax.js';

/**
 * The Berth manifest as authors write it (a Compose subset plus `name` and `version`) and as every
 * other part reads it (the normalized `Manifest` of model.ts). The input schema transforms to the
 * normalized form, so two spellings of one file normalize, canonicalize and digest identically.
 * Unknown keys are refused (strict objects); cross-service rules live in semantics.ts.
 */

// A manifest's name and version are the two halves of a release reference (common/grammar.ts).
export const NAME_RE = MANIFEST_NAME_RE;
export const VERSION_RE = RELEASE_VERSION_RE;
export const SERVICE_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// __proto__ is refused: it cannot survive as a key of a plain object (see parse.ts protoKeys).
const ENV_NAME_RE = /^(?!__proto__$)[^=\s]+$/;

export const DEFAULTS = {
  networkMode: 'host',
  restart: 'no',
  strategy: 'download-then-swap',
  healthTimeoutMs: 60_000,
  healthcheck: { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 },
} as const;

/** Renders an offending value the way an author would recognize it in their file. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return String(v);
}

function expected(what: string) {
  return { error: (iss: { input?: unknown }) => (iss.input === undefined ? `required: expected ${what}` : `expected ${what}, got ${show(iss.input)}`) };
}

function fail(ctx: z.RefinementCtx, message: string, path: PropertyKey[] = []): never {
  ctx.addIssue({ code: 'custom', message, path });
  return z.NEVER as never;
}

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

const volumeTarget = z.string().regex(/^\//, { error: (iss) => `mount target ${show(iss.input)} must be an absolute path` });
const volumeSource = z.string(expected('a named volume')).superRefine((s, ctx) => {
  if (isBindSource(s)) ctx.addIssue({ code: 'custom', message: `bind mount ${show(s)} is not supported: a manifest cannot rely on a gateway's files; use a named volume` });
  else if (!VOLUME_NAME_RE.test(s)) ctx.addIssue({ code: 'custom', message: `volume name ${show(s)} must be letters, digits, _ . - (starting with a letter or digit)` });
});
const volumeMount = z.union(
  [
    z.string().transform((s, ctx): VolumeMount => {
      const v = splitVolumeShort(s);
      return 'error' in v ? fail(ctx, v.error) : v;
    }),
    z
      .strictObject({
        type: z.literal('volume', { error: (iss) => `only type: volume is supported (bind mounts and tmpfs are not), got ${show(iss.input)}` }),
        source: volumeSource,
        target: volumeTarget,
        read_only: z.boolean().optional(),
      })
      .transform((v): VolumeMount => ({ source: v.source, target: v.target, readOnly: v.read_only ?? false })),
  ],
  expected('name:/path[:ro] or {type: volume, source, target, read_only}'),
);

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
      .record(z.string(), z.strictObject({ condition: condition.optional() }))
      .transform((m) => Object.fromEntries(Object.entries(m).map(([n, d]) => [n, { condition: d.condition ?? ('service_started' as DependsCondition) }]))),
  ],
  expected('a list of service names or a map of name: {condition}'),
);

const serviceShape = {
  image,
  command: command.optional(),
  entrypoint: command.optional(),
  environment: keyValues('environment variable', 'error').optional(),
  network_mode: z.enum(['host', 'none'], expected('host or none (Berth runs no bridge network on gateways)')).optional(),
  restart: z.enum(['no', 'always', 'on-failure', 'unless-stopped'], expected('no, always, on-failure or unless-stopped')).optional(),
  volumes: z.array(volumeMount).optional(),
  healthcheck: healthcheck.optional(),
  depends_on: dependsOn.optional(),
  deploy: z
    .strictObject({
      resources: z.strictObject({ limits: z.strictObject({ memory: memory.optional(), cpus: cpus.optional() }).optional() }).optional(),
    })
    .optional(),
  mem_limit: memory.optional(),
  cpus: cpus.optional(),
  user: z.union([z.string(), z.number().int().nonnegative()], expected('a user name or uid[:gid]')).transform(String).optional(),
  working_dir: z.string().regex(/^\//, { error: (iss) => `expected an absolute path, got ${show(iss.input)}` }).optional(),
  labels: keyValues('label', 'empty').optional(),
  stop_grace_period: duration.optional(),
};

export const serviceInputSchema = z.strictObject(serviceShape);
type ServiceInput = z.output<typeof serviceInputSchema>;

function toService(s: ServiceInput): Service {
  const limits = s.deploy?.resources?.limits;
  const service: Service = {
    image: s.image.trim(),
    environment: s.environment ?? {},
    networkMode: s.network_mode ?? DEFAULTS.networkMode,
    restart: s.restart ?? DEFAULTS.restart,
    volumes: s.volumes ?? [],
    dependsOn: s.depends_on ?? {},
    labels: s.labels ?? {},
  };
  // Optional members are left out rather than set to undefined so the object matches its canonical form.
  const optional: Partial<Service> = {
    command: s.command,
    entrypoint: s.entrypoint,
    healthcheck: s.healthcheck,
    memoryBytes: s.mem_limit ?? limits?.memory,
    nanoCpus: s.cpus ?? limits?.cpus,
    user: s.user,
    workingDir: s.working_dir,
    stopGracePeriodMs: s.stop_grace_period,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (service as unknown as Record<string, unknown>)[k] = v;
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

export const manifestInputSchema = z.strictObject({
  name: z.string(expected('a name like weather-station')).regex(NAME_RE, {
    error: (iss) => `expected a name of lowercase letters, digits and hyphens (at most 63, like weather-station), got ${show(iss.input)}`,
  }),
  version: z.string(expected('a release version like 1.4.0 (quote it in YAML if it looks like a number)')).regex(VERSION_RE, {
    error: (iss) => `expected a release version like 1.4.0 or 2.0.0-rc.1, got ${show(iss.input)}`,
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
  'x-berth': xBerth.optional(),
});

/** The input schema piped into the normalized form; `safeParse` of a document's value gives a `Manifest`. */
export const manifestSchema = manifestInputSchema.transform(
  (m): Manifest => ({
    name: m.name,
    version: m.version,
    services: m.services,
    volumes: Object.fromEntries(Object.keys(m.volumes ?? {}).map((v) => [v, {}])),
    update: {
      strategy: m['x-berth']?.update?.strategy ?? DEFAULTS.strategy,
      healthTimeoutMs: m['x-berth']?.update?.health_timeout ?? DEFAULTS.healthTimeoutMs,
    },
  }),
);

/**
 * Why a Compose key a user may well write is refused; keys not listed here get a plain
 * "not supported". Keeps the refusal a decision the author can understand, not a mystery.
 */
export const UNSUPPORTED_WHY: Record<string, string> = {
  privileged: 'containers on a gateway never run privileged',
  build: 'Berth deploys published images; build and push elsewhere, then reference the image',
  ports: 'services use host or none networking, where published ports have no meaning',
  expose: 'services use host or none networking, where exposed ports have no meaning',
  networks: 'services use network_mode host or none',
  cap_add: "containers keep Docker's default capabilities",
  cap_drop: "containers keep Docker's default capabilities",
  devices: 'manifests do not grant device access',
  secrets: 'manifests carry no secrets: they are signed, not encrypted',
  configs: 'put configuration in environment or the image',
  env_file: "an env file lives on the author's machine; write the variables under environment",
  container_name: 'Berth names containers itself',
  extends: 'write the service out in full',
  links: 'services use host or none networking',
  volumes_from: 'mount the named volume directly',
  include: 'a manifest is one file',
  profiles: 'every service of a manifest runs',
  scale: 'each service runs once per gateway',
  pid: 'containers keep their own PID namespace',
  ipc: 'containers keep their own IPC namespace',
  security_opt: "containers keep Docker's default security profile",
  tmpfs: 'use a named volume',
};

// ---------------------------------------------------------------------------------------------
// The normalized form, validated where it arrives from elsewhere (inside a signed document).

const stringMap = z.record(z.string(), z.string());
const nonNegInt = z.number().int().nonnegative();

export const normalizedServiceSchema = z.strictObject({
  image: z.string().min(1),
  command: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  environment: stringMap,
  networkMode: z.enum(['host', 'none']),
  restart: z.enum(['no', 'always', 'on-failure', 'unless-stopped']),
  volumes: z.array(z.strictObject({ source: z.string().regex(VOLUME_NAME_RE), target: z.string().regex(/^\//), readOnly: z.boolean() })),
  healthcheck: z
    .strictObject({ test: z.array(z.string()).min(1), intervalMs: nonNegInt, timeoutMs: nonNegInt, retries: nonNegInt, startPeriodMs: nonNegInt })
    .optional(),
  dependsOn: z.record(z.string(), z.strictObject({ condition })),
  memoryBytes: z.number().int().positive().optional(),
  nanoCpus: z.number().int().positive().optional(),
  user: z.string().optional(),
  workingDir: z.string().optional(),
  labels: stringMap,
  stopGracePeriodMs: nonNegInt.optional(),
});

export const normalizedManifestSchema = z.strictObject({
  name: z.string().regex(NAME_RE),
  version: z.string().regex(VERSION_RE),
  services: z.record(z.string().regex(SERVICE_NAME_RE), normalizedServiceSchema),
  volumes: z.record(z.string().regex(VOLUME_NAME_RE), z.strictObject({})),
  update: z.strictObject({ strategy: z.enum(['download-then-swap', 'stop-then-start']), healthTimeoutMs: z.number().int().positive() }),
});

/** The form a signed deployment document carries: normalized, with every image pinned by digest. */
export const pinnedManifestSchema = normalizedManifestSchema.superRefine((m, ctx) => {
  for (const [name, s] of Object.entries(m.services)) {
    let pinned = false;
    try {
      pinned = parseImageRef(s.image).digest !== undefined;
    } catch {
      pinned = false;
    }
    if (!pinned) ctx.addIssue({ code: 'custom', path: ['services', name, 'image'], message: `image ${show(s.image)} is not pinned by digest` });
  }
});

// Compile-time proof that the normalized schema describes model.ts's contract, both ways.
type Normalized = z.output<typeof normalizedManifestSchema>;
const _toModel = (m: Normalized): Manifest => m;
const _fromModel = (m: Manifest): Normalized => m;
void _toModel;
void _fromModel;
