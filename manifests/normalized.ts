import { z } from 'zod';
import { parseImageRef } from './image-ref.js';
import type { Manifest } from './model.js';
import { show } from './schema-base.js';
import { VOLUME_NAME_RE } from './forms.js';

/**
 * The normalized form, validated where it arrives from elsewhere (inside a signed document, from
 * the database). Strict like the input, so a field the daemon does not know is refused instead of
 * ignored: a gateway never runs less (or more) than the document says.
 */

const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const VERSION_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const SERVICE_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const stringMap = z.record(z.string(), z.string());
const nonNegInt = z.number().int().nonnegative();
const posInt = z.number().int().positive();
const absPath = z.string().regex(/^\//);
const port = z.number().int().min(1).max(65535);
const protocol = z.enum(['tcp', 'udp']);
const strings = z.array(z.string());
const condition = z.enum(['service_started', 'service_healthy', 'service_completed_successfully']);

export const normalizedServiceSchema = z.strictObject({
  image: z.string().min(1),
  command: strings.optional(),
  entrypoint: strings.optional(),
  environment: stringMap,
  networkMode: z.union([z.enum(['host', 'none', 'bridge', 'networks']), z.templateLiteral(['service:', z.string().regex(SERVICE_NAME_RE)])]),
  networks: z.record(z.string(), z.strictObject({ aliases: strings })).optional(),
  restart: z.enum(['no', 'always', 'on-failure', 'unless-stopped']),
  restartMaxRetries: posInt.optional(),
  volumes: z.array(z.strictObject({ source: z.string().regex(VOLUME_NAME_RE), target: absPath, readOnly: z.boolean() })),
  binds: z.array(z.strictObject({ source: absPath, target: absPath, readOnly: z.boolean(), createHostPath: z.boolean() })).optional(),
  tmpfs: z.array(z.strictObject({ target: absPath, sizeBytes: posInt.optional(), mode: nonNegInt.optional() })).optional(),
  healthcheck: z
    .strictObject({ test: z.array(z.string()).min(1), intervalMs: nonNegInt, timeoutMs: nonNegInt, retries: nonNegInt, startPeriodMs: nonNegInt })
    .optional(),
  dependsOn: z.record(z.string(), z.strictObject({ condition })),
  memoryBytes: posInt.optional(),
  memoryReservationBytes: posInt.optional(),
  nanoCpus: posInt.optional(),
  cpuset: z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/).optional(),
  user: z.string().optional(),
  workingDir: z.string().optional(),
  labels: stringMap,
  stopGracePeriodMs: nonNegInt.optional(),
  stopSignal: z.string().optional(),
  devices: z.array(z.strictObject({ source: absPath, target: absPath, permissions: z.string().regex(/^[rwm]{1,3}$/) })).optional(),
  groupAdd: strings.optional(),
  capAdd: strings.optional(),
  capDrop: strings.optional(),
  privileged: z.literal(true).optional(),
  sysctls: stringMap.optional(),
  ulimits: z.record(z.string(), z.strictObject({ soft: z.number().int(), hard: z.number().int() })).optional(),
  shmSizeBytes: posInt.optional(),
  pid: z.literal('host').optional(),
  ipc: z.string().optional(),
  securityOpt: strings.optional(),
  readOnly: z.literal(true).optional(),
  init: z.literal(false).optional(),
  hostname: z.string().optional(),
  extraHosts: strings.optional(),
  dns: strings.optional(),
  dnsSearch: strings.optional(),
  ports: z.array(z.strictObject({ target: port, published: port.optional(), hostIp: z.string().optional(), protocol })).optional(),
  expose: z.array(z.strictObject({ port, protocol })).optional(),
  logging: z.strictObject({ driver: z.enum(['json-file', 'local', 'journald', 'none']), maxSizeBytes: posInt.optional(), maxFile: posInt.optional() }).optional(),
  platform: z.string().optional(),
  secrets: z.array(z.strictObject({ source: z.string().min(1), target: z.string().regex(/^[A-Za-z0-9_.-]+$/), uid: nonNegInt, gid: nonNegInt, mode: nonNegInt })).optional(),
});

export const normalizedManifestSchema = z.strictObject({
  name: z.string().regex(NAME_RE),
  version: z.string().regex(VERSION_RE),
  services: z.record(z.string().regex(SERVICE_NAME_RE), normalizedServiceSchema),
  volumes: z.record(z.string().regex(VOLUME_NAME_RE), z.strictObject({})),
  networks: z.record(z.string().regex(VOLUME_NAME_RE), z.strictObject({ internal: z.literal(true).optional() })).optional(),
  secrets: z.record(z.string(), z.strictObject({})).optional(),
  update: z.strictObject({ strategy: z.enum(['download-then-swap', 'stop-then-start']), healthTimeoutMs: posInt }),
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
