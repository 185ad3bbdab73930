import { canonicalJson } from '../../manifests/canonical.js';
import type { Manifest, Service } from '../../manifests/model.js';

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

export interface ServiceDiff {
  service: string;
  change: 'added' | 'removed' | 'changed';
  image?: { from: string | null; to: string | null };
  fields: FieldChange[];
}

export interface ManifestDiff {
  from: string;
  to: string;
  services: ServiceDiff[];
  /** Top-level settings outside services (volumes, update strategy). */
  settings: FieldChange[];
}

function changes(a: Record<string, unknown>, b: Record<string, unknown>, skip: Set<string> = new Set()): FieldChange[] {
  const out: FieldChange[] = [];
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (skip.has(key)) continue;
    if (canonicalJson(a[key] ?? null) !== canonicalJson(b[key] ?? null)) out.push({ field: key, from: a[key] ?? null, to: b[key] ?? null });
  }
  return out;
}

/** What changes between two versions, service by service: the image and every other setting. */
export function diffManifests(from: Manifest, to: Manifest): ManifestDiff {
  const services: ServiceDiff[] = [];
  const names = [...new Set([...Object.keys(from.services), ...Object.keys(to.services)])].sort();
  for (const name of names) {
    const a: Service | undefined = from.services[name];
    const b: Service | undefined = to.services[name];
    if (!a && b) services.push({ service: name, change: 'added', image: { from: null, to: b.image }, fields: [] });
    else if (a && !b) services.push({ service: name, change: 'removed', image: { from: a.image, to: null }, fields: [] });
    else if (a && b) {
      const fields = changes(a as unknown as Record<string, unknown>, b as unknown as Record<string, unknown>, new Set(['image']));
      const imageChanged = a.image !== b.image;
      if (imageChanged || fields.length) services.push({ service: name, change: 'changed', ...(imageChanged ? { image: { from: a.image, to: b.image } } : {}), fields });
    }
  }
  return {
    from: `${from.name}@${from.version}`,
    to: `${to.name}@${to.version}`,
    services,
    settings: changes({ volumes: from.volumes, update: from.update }, { volumes: to.volumes, update: to.update }),
  };
}
