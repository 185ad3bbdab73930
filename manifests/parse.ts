import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { canonicalDigest } from './canonical.js';
import { parseImageRef, pinImageRef } from './image-ref.js';
import type { Manifest } from './model.js';
import { manifestInputSchema, manifestSchema, serviceInputSchema, show } from './schema.js';
import { composeWarnings, unknownKeyMessage } from './refusals.js';
import { locate } from './locate.js';
import { holdsVariable, interpolationIssues } from './interpolation.js';
import { semanticIssues, type RawIssue } from './semantics.js';
import { duplicateKeys, entryBudget, tooManyEntries } from './yaml-limits.js';

/** One problem in a manifest file: where (file, key path, and for syntax errors line:column) and what was expected. */
export interface ManifestIssue {
  file: string;
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** `warnings`: keys accepted that do not deploy quite as Compose would (printed, never fatal). */
export type ParseResult = { ok: true; manifest: Manifest; warnings: ManifestIssue[] } | { ok: false; errors: ManifestIssue[]; warnings?: ManifestIssue[] };

/** `weather.yaml:7:5: services.collector.healthcheck.interval: expected …` (line:column when the file gives it). */
export function formatIssue(i: ManifestIssue): string {
  const where = i.line !== undefined ? `${i.file}:${i.line}:${i.column ?? 1}` : i.file;
  return `${where}: ${i.path ? i.path + ': ' : ''}${i.message}`;
}

/** `services.collector.volumes[0]`; keys that would read ambiguously are quoted: `labels["com.acme.tier"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(String(seg))) out += (out ? '.' : '') + String(seg);
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

const TYPE_WORDS: Record<string, string> = { string: 'a string', number: 'a number', int: 'a whole number', boolean: 'true or false', array: 'a list', object: 'a map', record: 'a map', null: 'nothing' };

/** Per-parse messages for zod's generic issues; schema-level messages (schema.ts) win over these. */
function errorMap(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case 'invalid_type':
      return `${iss.input === undefined ? 'required: expected' : 'expected'} ${TYPE_WORDS[iss.expected] ?? iss.expected}${iss.input === undefined ? '' : `, got ${show(iss.input)}`}`;
    case 'invalid_value':
      return `expected ${iss.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${show(iss.input)}`;
    case 'too_small':
      return `expected at least ${String(iss.minimum)}, got ${show(iss.input)}`;
    case 'too_big':
      return `expected at most ${String(iss.maximum)}, got ${show(iss.input)}`;
    default:
      return `invalid value ${show(iss.input)}`;
  }
}

type ZIssue = z.core.$ZodIssue;

const TOP_KEYS = Object.keys(manifestInputSchema.shape);
const SERVICE_KEYS = Object.keys(serviceInputSchema.shape);
/** Keys of the nested maps, for "did you mean" below the service level. */
const NESTED_KEYS = [
  'test', 'interval', 'timeout', 'start_period', 'retries', 'disable', 'condition', 'required', 'resources', 'limits', 'reservations', 'memory', 'cpus',
  'type', 'source', 'target', 'read_only', 'bind', 'create_host_path', 'volume', 'nocopy', 'tmpfs', 'size', 'mode', 'published', 'host_ip', 'protocol',
  'aliases', 'driver', 'options', 'max-size', 'max-file', 'soft', 'hard', 'internal', 'update', 'strategy', 'health_timeout',
];

function knownKeys(path: (string | number)[]): readonly string[] {
  if (path.length === 0) return TOP_KEYS;
  if (path.length === 2 && path[0] === 'services') return SERVICE_KEYS;
  return NESTED_KEYS;
}

/**
 * zod's issues → one ManifestIssue per problem: an unknown key per key, and for a short-form/long-form
 * union, the problems of the form whose type the author evidently meant rather than "invalid input".
 */
function flatten(issues: readonly ZIssue[], base: PropertyKey[] = []): RawIssue[] {
  const out: RawIssue[] = [];
  for (const iss of issues) {
    const path = [...base, ...iss.path] as (string | number)[];
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) out.push({ path: [...path, key], message: unknownKeyMessage(key, knownKeys(path)) });
    } else if (iss.code === 'invalid_union' && iss.errors.length > 0) {
      const meant = iss.errors.filter((branch) => !branch.some((b) => b.path.length === 0 && b.code === 'invalid_type'));
      if (meant.length === 1) out.push(...flatten(meant[0], path));
      else out.push({ path, message: iss.message });
    } else if (iss.code === 'invalid_key') {
      out.push({ path, message: iss.issues[0]?.message ?? iss.message });
    } else {
      out.push({ path, message: iss.message });
    }
  }
  return out;
}

/**
 * Extension keys (`x-…`) at the top level and in services are the author's own (Compose semantics:
 * anchors for YAML reuse, notes for other tools): Berth drops them before validation. `x-berth` is
 * Berth's own and is validated at the top level; anywhere else it is refused like any unknown key.
 */
function stripExtensions(value: unknown): unknown {
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const strip = (m: Record<string, unknown>, keep: string[]) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('x-') || keep.includes(k)));
  if (!isMap(value)) return value;
  const top = strip(value, ['x-berth']);
  if (isMap(top.services)) {
    top.services = Object.fromEntries(Object.entries(top.services).map(([n, s]) => [n, isMap(s) ? strip(s, ['x-berth']) : s]));
  }
  return top;
}

/**
 * A `__proto__` key would vanish in a plain JS object (zod's records drop it), so the manifest would mean
 * less than it says; it is refused wherever it appears instead of being ignored.
 */
function protoKeys(value: unknown, path: (string | number)[] = []): RawIssue[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => protoKeys(v, [...path, i]));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === '__proto__' ? [{ path: [...path, k], message: 'the key __proto__ is not allowed' }] : protoKeys(v, [...path, k]),
  );
}

/** YAML 1.2 (so JSON too); duplicate keys, multiple documents and warnings are errors with line:column. */
function readDocument(text: string, file: string): { value: unknown; doc: Document; lines: LineCounter } | { errors: ManifestIssue[] } {
  const budget = entryBudget(text);
  if (budget) return { errors: [{ file, path: '', message: budget }] };
  const lineCounter = new LineCounter();
  // uniqueKeys off: the library's check is quadratic; duplicateKeys is the same rule in one pass.
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: false });
  const problems = [...doc.errors, ...doc.warnings].map((e) => ({ pos: e.pos[0], message: e.message.split('\n')[0] }));
  problems.push(...duplicateKeys(doc).map((pos) => ({ pos, message: 'Map keys must be unique' })));
  problems.sort((a, b) => a.pos - b.pos);
  if (problems.length > 0) {
    return {
      errors: problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos);
        return { file, path: '', message: `YAML: ${e.message}`, line, column: col };
      }),
    };
  }
  const tooMany = tooManyEntries(doc);
  if (tooMany) return { errors: [{ file, path: '', message: tooMany }] };
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }), doc, lines: lineCounter };
  } catch (err) {
    return { errors: [{ file, path: '', message: `YAML: ${(err as Error).message}` }] };
  }
}

/** Parses a manifest file's text (YAML or JSON) into the normalized form, or reports every problem in it. */
export function parseManifest(text: string, file: string): ParseResult {
  const read = readDocument(text, file);
  if ('errors' in read) return { ok: false, errors: read.errors };
  if (typeof read.value !== 'object' || read.value === null || Array.isArray(read.value)) {
    return { ok: false, errors: [{ file, path: '', message: `expected a map with name, version and services, got ${show(read.value ?? undefined)}` }] };
  }
  // The published manifest keeps `${…}` and `$$` as written: each device's values are substituted when its document is signed.
  const raw = stripExtensions(read.value);
  const result = manifestSchema.safeParse(raw, { error: errorMap });
  const schemaIssues = result.success ? [] : flatten(result.error.issues).map((r) => (holdsVariable(raw, r.path) ? { ...r, message: `${r.message} (a \${…} variable is substituted per device, so it may stand only where any text is valid: environment, command, labels…)` } : r));
  const found = [...interpolationIssues(raw), ...schemaIssues, ...semanticIssues(raw), ...protoKeys(raw)];
  const place = (r: RawIssue): ManifestIssue => ({ file, path: formatPath(r.path), message: r.message, ...locate(read.doc, read.lines, r.path) });
  const seen = new Set<string>();
  const errors: ManifestIssue[] = [];
  for (const r of found) {
    const issue = place(r);
    const key = issue.path + '\0' + issue.message;
    if (!seen.has(key)) errors.push(issue);
    seen.add(key);
  }
  const warnings = composeWarnings(raw).map(place);
  if (errors.length > 0 || !result.success) return { ok: false, errors, warnings };
  return { ok: true, manifest: result.data, warnings };
}

/** Reads and parses a manifest file; issues name the file as given (or its base name when `short`). */
export async function loadManifestFile(path: string, opts: { short?: boolean } = {}): Promise<ParseResult> {
  const file = opts.short ? basename(path) : path;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ file, path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }] };
  }
  return parseManifest(text, file);
}

/** The identity of a manifest's content: the sha256 of its canonical JSON. */
export function manifestDigest(m: Manifest): string {
  return canonicalDigest(m);
}

/** True when every image is pinned by digest (what a published manifest and a deployment document require). */
export function isPinned(m: Manifest): boolean {
  return Object.values(m.services).every((s) => {
    try {
      return parseImageRef(s.image).digest !== undefined;
    } catch {
      return false;
    }
  });
}

/**
 * Publish-time pinning: every image becomes `registry/repository@digest`. `resolve` maps a service's
 * image as written to its manifest digest (a digest already in the reference is kept when it
 * returns undefined); an image it cannot pin is an error naming the service.
 */
export function pinManifest(m: Manifest, resolve: (image: string, service: string) => string | undefined): Manifest {
  const services = Object.fromEntries(
    Object.entries(m.services).map(([name, s]) => {
      const written = parseImageRef(s.image).digest;
      const digest = resolve(s.image, name) ?? written;
      if (!digest) throw new Error(`services.${name}.image: cannot pin ${JSON.stringify(s.image)}: no digest known`);
      if (written && written !== digest) throw new Error(`services.${name}.image: ${s.image} names ${written} but resolves to ${digest}`);
      return [name, { ...s, image: pinImageRef(s.image, digest) }];
    }),
  );
  return { ...m, services };
}

