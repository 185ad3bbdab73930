import { z } from 'zod';
import { parseMode } from './forms.js';
import type { Manifest, SecretMount } from './model.js';
import { expected, fail, show, via } from './schema-base.js';

/**
 * Compose's `secrets:`, the Berth way. The top level declares the names a manifest uses
 * (`secrets: { db_password: {} }`); the values never come from the author's machine (`file:`,
 * `environment:`) but from the control plane (`berth secrets set`), per device, selector or fleet,
 * encrypted to each device. A service lists what it mounts at `/run/secrets/<target>`.
 */

export const SECRET_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A file name under /run/secrets: no slash, so a secret cannot land anywhere else in the container. */
const TARGET_RE = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,128}$/;
export const SECRETS_DIR = '/run/secrets';
/** Readable by the owner only (Compose reads 0444; Berth owns the file to `uid`, so 0400 is enough). */
export const DEFAULT_SECRET_MODE = 0o400;

const FROM_CONTROL_PLANE = 'Berth takes secret values from the control plane (berth secrets set NAME --from-file F …), never from the author\'s machine; write {}';

const secretName = z.string().regex(SECRET_NAME_RE, { error: (iss) => `secret name ${show(iss.input)} must be 1-64 of letters, digits, _ . - (starting with a letter or digit)` });

/** Top-level `secrets`: a name → `{}` (or nothing). `file`, `environment`, `external`, `name` are refused with the reason. */
export const topSecrets = z.record(
  secretName,
  z.union([z.null(), z.record(z.string(), z.unknown())], expected('{} (the value is set with berth secrets set)')).transform((v, ctx) => {
    for (const k of Object.keys(v ?? {})) fail(ctx, k === 'file' || k === 'environment' || k === 'external' || k === 'name' ? `${k} is not supported: ${FROM_CONTROL_PLANE}` : `${k} is not supported; write {}`, [k]);
    return {} as Record<string, never>;
  }),
);

const id = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)], expected('a numeric id like 1000')).transform(Number);
const target = z.string(expected('a file name under /run/secrets')).regex(TARGET_RE, { error: (iss) => `target ${show(iss.input)} must be a file name (letters, digits, _ . -) under ${SECRETS_DIR}; paths elsewhere are not supported` });

const longSecret = z.strictObject({
  source: secretName,
  target: target.optional(),
  uid: id.optional(),
  gid: id.optional(),
  mode: z.union([z.string(), z.number()], expected('an octal mode like 0400')).transform(via(parseMode)).optional(),
});

/** A service's `secrets`: names, or `{source, target, uid, gid, mode}`. */
export const serviceSecrets = z
  .array(
    z.union([secretName.transform((source) => ({ source })), longSecret], expected('a secret name or {source, target, uid, gid, mode}')).transform(
      (s): SecretMount => ({ source: s.source, target: 'target' in s && s.target !== undefined ? s.target : s.source, uid: ('uid' in s && s.uid) || 0, gid: ('gid' in s && s.gid) || 0, mode: ('mode' in s && s.mode) || DEFAULT_SECRET_MODE }),
    ),
    expected('a list of secret names'),
  )
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((s, i) => {
      if (seen.has(s.target)) ctx.addIssue({ code: 'custom', message: `${SECRETS_DIR}/${s.target} is mounted twice`, path: [i] });
      seen.add(s.target);
      if (!TARGET_RE.test(s.target)) ctx.addIssue({ code: 'custom', message: `secret ${JSON.stringify(s.source)} needs a target that is a file name (its name is used by default)`, path: [i] });
    });
  });

type Raw = Record<string, unknown>;
const isMap = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A service's secret that the top level does not declare: an error at its path (runs on the raw document, like semantics.ts). */
export function secretIssues(doc: unknown): { path: (string | number)[]; message: string }[] {
  if (!isMap(doc) || !isMap(doc.services)) return [];
  const declared = isMap(doc.secrets) ? Object.keys(doc.secrets) : [];
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const [name, svc] of Object.entries(doc.services)) {
    if (!isMap(svc) || !Array.isArray(svc.secrets)) continue;
    svc.secrets.forEach((s, i) => {
      const source = typeof s === 'string' ? s : isMap(s) && typeof s.source === 'string' ? s.source : undefined;
      if (source !== undefined && !declared.includes(source)) {
        out.push({ path: ['services', name, 'secrets', i], message: `unknown secret ${JSON.stringify(source)}: declare it under top-level secrets (secrets: {${source}: {}})${declared.length ? `; declared: ${declared.join(', ')}` : ''}` });
      }
    });
  }
  return out;
}

/** The names of the secrets a manifest's services mount, sorted: what each target device needs a value for. */
export function secretsUsed(m: Pick<Manifest, 'services'>): string[] {
  const names = new Set<string>();
  for (const s of Object.values(m.services)) for (const x of s.secrets ?? []) names.add(x.source);
  return [...names].sort();
}
