import { z } from 'zod';
import { expected, fail, show, via } from './schema-base.js';
import { hostPathError, isHostPath, normalizePath, parseVolumeShort, VOLUME_NAME_RE, type ShortMount } from './forms.js';
import type { TmpfsMount } from './model.js';
import { tmpfsMount, tmpfsOptions } from './schema-host.js';

/** A service's `volumes` entries: named volumes, bind mounts of gateway paths, tmpfs. */
export type Mount = ShortMount | { kind: 'tmpfs'; mount: TmpfsMount };

const target = z.string(expected('an absolute path')).regex(/^\//, { error: (iss) => `mount target ${show(iss.input)} must be an absolute path` });

const longMount = z
  .strictObject({
    type: z.enum(['volume', 'bind', 'tmpfs'], { error: (iss) => `expected volume, bind or tmpfs, got ${show(iss.input)}` }),
    source: z.string(expected('a volume name or a gateway path')).optional(),
    target,
    read_only: z.boolean().optional(),
    bind: z.strictObject({ create_host_path: z.boolean().optional() }).optional(),
    volume: z.strictObject({ nocopy: z.boolean().optional() }).optional(),
    tmpfs: tmpfsOptions.optional(),
  })
  .transform((m, ctx): Mount => {
    const wrong = (key: 'bind' | 'volume' | 'tmpfs') => m[key] !== undefined && m.type !== key && fail(ctx, `${key} options need type: ${key}`, [key]);
    wrong('bind');
    wrong('volume');
    wrong('tmpfs');
    if (m.type === 'tmpfs') {
      if (m.source !== undefined) return fail(ctx, 'a tmpfs mount has no source', ['source']);
      return { kind: 'tmpfs', mount: tmpfsMount(m.target, m.tmpfs) };
    }
    if (m.source === undefined) return fail(ctx, m.type === 'bind' ? 'required: expected the gateway path to mount' : 'required: expected a volume name (anonymous volumes are not supported)', ['source']);
    const readOnly = m.read_only ?? false;
    if (m.type === 'bind') {
      const bad = isHostPath(m.source) ? hostPathError(m.source) : `bind source ${show(m.source)} must be an absolute path on the gateway`;
      if (bad) return fail(ctx, bad, ['source']);
      return { kind: 'bind', mount: { source: normalizePath(m.source), target: m.target, readOnly, createHostPath: m.bind?.create_host_path ?? false } };
    }
    if (isHostPath(m.source)) return fail(ctx, `${show(m.source)} is a path: write type: bind for a bind mount`, ['source']);
    if (!VOLUME_NAME_RE.test(m.source)) return fail(ctx, `volume name ${show(m.source)} must be letters, digits, _ . - (starting with a letter or digit)`, ['source']);
    return { kind: 'volume', mount: { source: m.source, target: m.target, readOnly } };
  });

export const mounts = z.array(
  z.union([z.string().transform(via(parseVolumeShort)), longMount], expected('name:/path[:ro], /gateway/path:/path[:ro], or {type: volume|bind|tmpfs, source, target, …}')),
  expected('a list of mounts'),
);
