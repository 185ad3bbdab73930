/**
 * The grammar of every scalar a person types into Berth, each rule in one place: durations, byte
 * sizes, percentages, campaign waves, release references, labels and digests. Flags, manifest keys and API
 * fields all read their values through these functions (or the zod schemas built on them), so
 * `1h30m` or `12.5%` means the same on the command line, in a manifest and in a request body.
 * The table of these rules for users is in cli/README.md ("Values").
 *
 * Each parse function throws a GrammarError that says what was expected and what came instead;
 * callers name the place (a flag, a key path, a body field) by passing a label.
 */
import { z } from 'zod';
import { DIGEST_RE } from './digest.js';

export class GrammarError extends Error {
  constructor(
    /** Where the value came from (`--soak`, `waves`); absent when the caller names it itself. */
    readonly label: string | undefined,
    /** What is wrong, without the label: the same words wherever the value was given. */
    readonly detail: string,
    /** For lists (waves): the 0-based position of the bad item. */
    readonly index?: number,
  ) {
    super(label ? `${label}: ${detail}` : detail);
    this.name = 'GrammarError';
  }
}

/** Longest string echoed back in an error: a hostile file must not make answers of its own size. */
const SHOWN_MAX = 200;

/** A value as the person wrote it: strings quoted (the first 200 characters of a longer one), lists and maps named. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return v.length > SHOWN_MAX ? `${JSON.stringify(v.slice(0, SHOWN_MAX))}… (${v.length} characters)` : JSON.stringify(v);
  if (v === null || v === undefined) return v === null ? 'null (an empty value)' : 'nothing';
  return Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a map' : String(v);
}

function expected(what: string, got: unknown, why?: string): string {
  return `expected ${what}, got ${showValue(got)}${why ? `: ${why}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Durations: one or more <number><unit>, largest unit first, each unit at most once: `1h30m`,
// `90s`, `1.5h`, `250ms`, `2w`. A bare number is refused (is `90` seconds or minutes?), except `0`.

export const DURATION_WHAT = 'a duration like 30s, 1m30s or 500ms';
const DURATION_UNITS = [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const;

/** A duration → whole milliseconds (sub-millisecond parts round: nothing here is that precise). */
export function parseDuration(text: string, label?: string): number {
  const t = text.trim();
  const fail = (why?: string) => new GrammarError(label, expected(DURATION_WHAT, text, why));
  if (t === '') throw fail();
  if (t === '0') return 0;
  if (/^\d+(?:\.\d+)?$/.test(t)) throw fail(`a number needs a unit (${t}s? ${t}m?)`);
  // Sticky: each part must start where the previous one ended, so nothing is skipped silently.
  const part = /(\d+(?:\.\d+)?)(ms|w|d|h|m|s)/y;
  let total = 0;
  let previous = -1;
  while (part.lastIndex < t.length) {
    const at = part.lastIndex;
    const m = part.exec(t);
    // A number without a known unit after it gets the list of units; plain words just the example.
    if (!m) throw fail(/^\d/.test(t.slice(at)) ? 'the units are w, d, h, m, s and ms' : undefined);
    const rank = DURATION_UNITS.findIndex(([unit]) => unit === m[2]);
    if (rank <= previous) throw fail('give each unit once, the largest first (like 1h30m)');
    previous = rank;
    total += Number(m[1]) * DURATION_UNITS[rank][1];
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw fail('too long');
  return ms;
}

/** Milliseconds → the shortest compound form that parses back to the same value (`1h30m`, `0s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  // Weeks are read, never written: `14d` says more than `2w` to most readers.
  for (const [unit, size] of DURATION_UNITS.slice(1)) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sizes: a number with an optional binary unit, case-insensitive, as Docker and Compose write
// them: `128M`, `1g`, `512k`, `64mb`, `2b`, `1.5g`, or a plain number of bytes. Always > 0.

export const SIZE_WHAT = 'a size like 128M, 1g, 512k or a number of bytes';
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4 };

/** A size → whole bytes. */
export function parseSize(value: string | number, label?: string): number {
  const fail = (why?: string) => new GrammarError(label, expected(SIZE_WHAT, value, why));
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) throw fail('a number of bytes is a whole number above 0');
    return value;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(value.trim().toLowerCase());
  if (!m) throw fail();
  if (!(m[2] in SIZE_UNITS)) throw fail(`unknown unit ${JSON.stringify(m[2])} (b, k, m, g, t, with or without a trailing b)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2]]);
  if (bytes <= 0) throw fail('a size is at least 1 byte');
  if (!Number.isSafeInteger(bytes)) throw fail('too large');
  return bytes;
}

/** Bytes → the largest unit that divides them exactly (`128M`, `1536K`, `100`). */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K']) {
    const size = SIZE_UNITS[unit.toLowerCase()];
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

// ---------------------------------------------------------------------------------------------
// Percentages: a decimal number from 0 to 100, the `%` optional where nothing else could be
// meant (`95%`, `95`, `12.5%`). The API carries them as shares from 0 to 1.

export const PERCENT_WHAT = 'a percentage like 95% or 12.5%';
const PERCENT_RE = /^(\d+(?:\.\d+)?)%?$/;

/** A percentage → its number, 0 to 100. */
export function parsePercent(text: string, label?: string): number {
  const m = PERCENT_RE.exec(text.trim());
  if (!m) throw new GrammarError(label, expected(PERCENT_WHAT, text));
  const p = Number(m[1]);
  if (p > 100) throw new GrammarError(label, expected(PERCENT_WHAT, text, 'at most 100%'));
  return p;
}

/** 0.125 → `12.5%`: a share as people read it, without float noise. */
export function formatShare(share: number): string {
  return `${Number((share * 100).toFixed(6))}%`;
}

// ---------------------------------------------------------------------------------------------
// Waves: cumulative targets of a campaign, each a device count (`5`) or a share of the devices
// the selector picks (`10%`, `12.5%`; the `%` is required here, it is what tells the two apart).
// Written as a comma-separated list on the command line, as a list of strings in the API.

export const WAVE_WHAT = 'a device count like 5 or a percentage like 10% or 12.5%';
export const MAX_WAVES = 100;

/** A wave's cumulative target: an absolute number of devices, or a share of the matching fleet. */
export type WaveTarget = { kind: 'count'; count: number } | { kind: 'percent'; percent: number };

function parseWave(raw: string, position: number, label: string | undefined): WaveTarget {
  const t = raw.trim();
  const fail = (why?: string) => new GrammarError(label, `wave ${position + 1}: ${expected(WAVE_WHAT, raw, why)}`, position);
  if (t === '') throw fail('the wave is empty');
  if (t.endsWith('%')) {
    const m = /^(\d+(?:\.\d+)?)%$/.exec(t);
    const percent = m ? Number(m[1]) : NaN;
    if (!(percent > 0 && percent <= 100)) throw fail(m ? 'a percentage of a wave is above 0% and at most 100%' : undefined);
    return { kind: 'percent', percent };
  }
  if (!/^\d+$/.test(t)) throw fail(/^\d+\.\d+$/.test(t) ? 'a device count is a whole number' : undefined);
  const count = Number(t);
  if (count < 1 || !Number.isSafeInteger(count)) throw fail('a device count is at least 1');
  return { kind: 'count', count };
}

/**
 * `1,10%,100%` (or the list `["1","10%","100%"]`) → targets. A wave must grow over the one before
 * it when both are of the same kind; mixed kinds depend on the fleet size and are resolved then.
 */
export function parseWaves(waves: string | readonly string[], label?: string): WaveTarget[] {
  const list = typeof waves === 'string' ? waves.split(',') : waves;
  if (list.length === 0) throw new GrammarError(label, 'at least one wave is required');
  if (list.length > MAX_WAVES) throw new GrammarError(label, `at most ${MAX_WAVES} waves, got ${list.length}`);
  const targets = list.map((raw, i) => parseWave(raw, i, label));
  for (let i = 1; i < targets.length; i++) {
    const [a, b] = [targets[i - 1], targets[i]];
    const shrinks = (a.kind === 'count' && b.kind === 'count' && b.count <= a.count) || (a.kind === 'percent' && b.kind === 'percent' && b.percent <= a.percent);
    if (shrinks) throw new GrammarError(label, `wave ${i + 1} (${formatWave(b)}) does not grow over wave ${i} (${formatWave(a)}): waves are cumulative targets, like 1,10%,100%`, i);
  }
  return targets;
}

export function formatWave(w: WaveTarget): string {
  return w.kind === 'count' ? String(w.count) : `${w.percent}%`;
}

// ---------------------------------------------------------------------------------------------
// Release references: `name@version`, the name and version exactly as a manifest declares them.

export const MANIFEST_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const RELEASE_VERSION_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
export const RELEASE_WHAT = 'a release like weather-station@1.4.0';

export interface ReleaseRef {
  name: string;
  version: string;
}

export function parseReleaseRef(text: string, label?: string): ReleaseRef {
  const t = text.trim();
  const at = t.indexOf('@');
  const fail = (why: string) => new GrammarError(label, expected(RELEASE_WHAT, text, why));
  if (at < 0) throw fail('the @version is missing');
  const name = t.slice(0, at);
  const version = t.slice(at + 1);
  if (!MANIFEST_NAME_RE.test(name)) throw fail(`the name ${JSON.stringify(name)} must be lowercase letters, digits and -, at most 63`);
  if (!RELEASE_VERSION_RE.test(version)) throw fail(`the version ${JSON.stringify(version)} must be a semantic version like 1.4.0`);
  return { name, version };
}

export function formatReleaseRef(ref: ReleaseRef): string {
  return `${ref.name}@${ref.version}`;
}

// ---------------------------------------------------------------------------------------------
// Labels: Kubernetes' rules, so that selectors read as operators know them. A key is a name,
// optionally after a DNS-subdomain prefix and `/` (`example.com/rack`); a value is a name or empty.
// A name is 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.

const LABEL_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const LABEL_KEY_WHAT = 'a label key: a name of 1-63 letters, digits, - _ . (starting and ending with a letter or digit), optionally after a DNS prefix/';
export const LABEL_VALUE_WHAT = 'a label value: empty, or 1-63 letters, digits, - _ . (starting and ending with a letter or digit)';

export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash === -1) return LABEL_NAME_RE.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN_RE.test(prefix) && LABEL_NAME_RE.test(key.slice(slash + 1));
}

export function isLabelValue(value: string): boolean {
  return value === '' || LABEL_NAME_RE.test(value);
}

// ---------------------------------------------------------------------------------------------
// Digests: the rule itself is common/digest.ts (sha256 only, lowercase hex); this is its parser.

export const DIGEST_WHAT = 'a digest sha256:<64 lowercase hex>';

export function parseDigest(text: string, label?: string): string {
  if (!DIGEST_RE.test(text)) throw new GrammarError(label, expected(DIGEST_WHAT, text));
  return text;
}

// ---------------------------------------------------------------------------------------------
// zod schemas on the same functions, for manifests/, protocol/ and request bodies. A bad value
// becomes one issue whose message is the GrammarError's detail (the schema's caller adds the path).

function onGrammar<I, T>(parse: (value: I) => T) {
  return (value: I, ctx: z.RefinementCtx): T => {
    try {
      return parse(value);
    } catch (err) {
      if (!(err instanceof GrammarError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.detail, input: value });
      return z.NEVER;
    }
  };
}

function typed(what: string) {
  return { error: (iss: { input?: unknown }) => (iss.input === undefined ? `required: expected ${what}` : expected(what, iss.input)) };
}

/** A duration string → milliseconds. */
export const durationMsSchema = z
  .string(typed(DURATION_WHAT))
  .meta({ description: 'Duration: 30s, 1m30s, 500ms, 1.5h, 2d (units w, d, h, m, s, ms, largest first); 0 needs no unit' })
  .transform(onGrammar((s: string) => parseDuration(s)));

/** A size (a string with a unit, or a number of bytes) → bytes. */
export const sizeBytesSchema = z
  .union([z.string(), z.number()], typed(SIZE_WHAT))
  .meta({ description: 'Bytes: 128M, 1g, 512k, 64mb (binary multiples) or a number of bytes' })
  .transform(onGrammar((v: string | number) => parseSize(v)));

/** A release reference `name@version`, checked and kept as written. */
export const releaseRefSchema = z
  .string(typed(RELEASE_WHAT))
  .meta({ description: 'Release: name@version, e.g. weather-station@1.4.0' })
  .transform(onGrammar((s: string) => formatReleaseRef(parseReleaseRef(s))));

/** Labels one device may carry (Kubernetes has no count limit, but its objects have a size limit; this is ours). */
export const MAX_LABELS = 64;

export function tooManyLabels(count: number): string {
  return `${count} labels, a device has at most ${MAX_LABELS}`;
}

/** A label map, every key and value checked, at most `MAX_LABELS` of them. */
export const labelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  const count = Object.keys(labels).length;
  if (count > MAX_LABELS) {
    ctx.addIssue({ code: 'custom', path: [], message: tooManyLabels(count), input: labels });
    return;
  }
  // Checked here rather than as a key schema, so a bad key is named like a bad value, at its path.
  for (const [key, value] of Object.entries(labels)) {
    if (!isLabelKey(key)) ctx.addIssue({ code: 'custom', path: [key], message: expected(LABEL_KEY_WHAT, key), input: key });
    else if (!isLabelValue(value)) ctx.addIssue({ code: 'custom', path: [key], message: expected(LABEL_VALUE_WHAT, value), input: value });
  }
});

/** A digest, checked and kept as written. */
export const digestSchema = z
  .string(typed(DIGEST_WHAT))
  .meta({ description: 'Digest: sha256:<64 lowercase hex>' })
  .transform(onGrammar((s: string) => parseDigest(s)));
