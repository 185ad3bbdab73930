import { sql } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { secretsUsed } from '../../manifests/secrets.js';
import type { Reader } from '../campaigns/store.js';
import { formatSelector, parseSelector, selectorCondition } from '../selector.js';
import { lackingFor, lackLine, type SecretDevice } from './resolve.js';
import { candidatesFor } from './store.js';

export interface SecretsLackingDevice {
  serial: string;
  problems: string[];
}

export interface SecretsCheck {
  /** The secrets the manifest mounts. */
  secrets: string[];
  devices: number;
  ok: boolean;
  /** Up to 10 devices that lack something, by serial. */
  sample: SecretsLackingDevice[];
  lackingDevices: number;
  message: string;
}

const SAMPLE = 10;

export type TargetDevice = SecretDevice & { encryptionKey: string | null };

/** Target devices of a rollout with what the secrets need (labels, encryption key); not revoked. */
export async function secretTargets(db: Reader, selectorText: string, onlyDevice?: string): Promise<TargetDevice[]> {
  const selector = parseSelector(selectorText);
  const rows = await db.all<{ id: string; serial: string; labels: string; encryption_key: string | null }>(sql`SELECT d.id, d.serial, d.labels, d.encryption_key FROM devices d
    WHERE d.status <> 'revoked' AND ${selectorCondition(selector, sql`d.labels`)} ${onlyDevice === undefined ? sql`` : sql`AND d.id = ${onlyDevice}`}`);
  return rows.map((r) => ({ id: r.id, serial: r.serial, labels: JSON.parse(r.labels) as Record<string, string>, encryptionKey: r.encryption_key }));
}

/**
 * The up-front check of a rollout (campaign create, device assign), beside the privilege check:
 * every target device must have an encryption key and exactly one value for each secret the
 * manifest mounts. A manifest without secrets is ok at no cost.
 */
export async function checkSecrets(db: Reader, spec: Manifest, selectorText: string, onlyDevice?: string): Promise<SecretsCheck> {
  const names = secretsUsed(spec);
  if (!names.length) return { secrets: [], devices: 0, ok: true, sample: [], lackingDevices: 0, message: '' };
  const targets = await secretTargets(db, selectorText, onlyDevice);
  const byName = await candidatesFor(db, names);
  const lacking: SecretsLackingDevice[] = [];
  for (const d of targets) {
    const problems = lackingFor(names, byName, d).map(lackLine);
    if (problems.length) lacking.push({ serial: d.serial, problems });
  }
  lacking.sort((a, b) => a.serial.localeCompare(b.serial));
  const sel = formatSelector(parseSelector(selectorText));
  const message = lacking.length
    ? `${lacking.length} of ${targets.length} device${targets.length === 1 ? '' : 's'}${sel ? ` matching ${sel}` : ''} cannot receive the secrets ${names.join(', ')}: ${lacking
        .slice(0, SAMPLE)
        .map((l) => `${l.serial}: ${l.problems.join('; ')}`)
        .join(' | ')}${lacking.length > SAMPLE ? ` | and ${lacking.length - SAMPLE} more` : ''}`
    : '';
  return { secrets: names, devices: targets.length, ok: lacking.length === 0, sample: lacking.slice(0, SAMPLE), lackingDevices: lacking.length, message };
}
