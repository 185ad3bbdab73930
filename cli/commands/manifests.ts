import { parseReleaseRef } from '../../common/grammar.js';
import { printPrivileges } from './policies.js';
import { printVariables } from './vars.js';
import { manifestJsonSchemaText } from '../../manifests/json-schema.js';
import { formatIssue, loadManifestFile, manifestDigest } from '../../manifests/parse.js';
import { requirePositionals } from '../args.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { formatAgo, renderFields, renderTable, shortDigest } from '../format.js';
import type { FieldChange, ManifestDiff } from '../client.js';
import { byRelease } from '../versions.js';

export const manifestsList: Command = {
  usage: 'berth manifests list [--output json]',
  about: 'published manifests (name, version, content digest), by name and the highest version first',
  options: {},
  examples: ['berth manifests list', 'berth manifests list -o name'],
  async run({ io, args, client }) {
    const items = byRelease(await (await client()).listManifests());
    if (args.output === 'json') { printJson(io, items); return 0; }
    if (!items.length) { io.out('no manifests published yet (berth apply -f FILE)'); return 0; }
    const now = io.now();
    io.out(renderTable([
      { header: 'name', get: (m) => m.name },
      { header: 'version', get: (m) => m.version },
      { header: 'digest', get: (m) => shortDigest(m.digest) },
      { header: 'published', get: (m) => formatAgo(m.publishedAt, now) },
      { header: 'by', get: (m) => m.publishedBy ?? '-' },
    ], items));
    return 0;
  },
};

export const manifestsShow: Command = {
  usage: 'berth manifests show NAME@VERSION [--output json]',
  about: 'one manifest with the digest each image is pinned to',
  options: {},
  args: ['release'],
  examples: ['berth manifests show demo@2.0.0', 'berth manifests show demo@2.0.0 -o yaml'],
  async run({ io, args, usage, client }) {
    const [ref] = requirePositionals(args, ['NAME@VERSION'], usage);
    const { name, version } = parseReleaseRef(ref, 'NAME@VERSION');
    const m = await (await client()).manifest(name, version);
    if (args.output === 'json') { printJson(io, m); return 0; }
    io.out(renderFields([
      ['manifest', `${m.name}@${m.version}`],
      ['digest', m.digest],
      ['published', `${m.publishedAt ?? '-'}${m.publishedBy ? ` by ${m.publishedBy}` : ''}`],
    ]));
    io.out('');
    io.out(renderTable([{ header: 'service', get: (r) => r[0] }, { header: 'pinned image', get: (r) => r[1] }], Object.entries(m.services)));
    io.out('');
    printPrivileges(io, m.privileges);
    printVariables(io, m.variables);
    return 0;
  },
};

function show(v: unknown): string {
  if (v === null || v === undefined) return '-';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function fieldLines(prefix: string, fields: FieldChange[]): string[] {
  return fields.map((f) => `${prefix}${f.field}: ${show(f.from)} → ${show(f.to)}`);
}

/** `+ service`, `- service`, `~ service` with the image and each changed field under it. */
export function renderDiff(diff: ManifestDiff): string {
  const lines: string[] = [];
  for (const s of diff.services) {
    const mark = s.change === 'added' ? '+' : s.change === 'removed' ? '-' : '~';
    lines.push(`${mark} ${s.service}`);
    if (s.image) lines.push(`    image: ${show(s.image.from)} → ${show(s.image.to)}`);
    lines.push(...fieldLines('    ', s.fields));
  }
  if (diff.settings.length) lines.push('~ (settings)', ...fieldLines('    ', diff.settings));
  return lines.length ? lines.join('\n') : '(no differences)';
}

export const manifestsDiff: Command = {
  usage: 'berth manifests diff NAME@A NAME@B   (or NAME@A B) [--output json]',
  about: 'what changed between two versions of a manifest',
  options: {},
  args: ['release'],
  examples: ['berth manifests diff demo@1.0.0 2.0.0', 'berth manifests diff demo@1.0.0 demo@2.0.0 -o json'],
  async run({ io, args, usage, client }) {
    const [a, b] = requirePositionals(args, ['NAME@A', 'B'], usage);
    const from = parseReleaseRef(a, 'first manifest');
    // The second may be a version alone: the same manifest's other version.
    const to = parseReleaseRef(b.includes('@') ? b : `${from.name}@${b}`, 'second manifest');
    if (to.name !== from.name) throw new CliError(`cannot diff ${from.name} against ${to.name}`, 'diff compares two versions of the same manifest', 2);
    const diff = await (await client()).diffManifests(from.name, from.version, to.version);
    if (args.output === 'json') { printJson(io, diff); return 0; }
    io.out(`${diff.from} → ${diff.to}`);
    io.out(renderDiff(diff));
    return 0;
  },
};

export const manifestsValidate: Command = {
  usage: 'berth manifests validate FILE… [--output json]',
  about: 'check manifest files (YAML or JSON) locally, every problem with file, key path and what was expected; exit 0 only if all are valid',
  options: {},
  args: ['file'],
  examples: ['berth manifests validate demo.yaml', 'berth manifests validate manifests/*.yaml -o json'],
  async run({ io, args, usage }) {
    const files = requirePositionals(args, ['FILE'], usage, true);
    const results = [];
    for (const file of files) {
      const result = await loadManifestFile(file);
      results.push(result.ok
        ? { file, valid: true as const, release: `${result.manifest.name}@${result.manifest.version}`, digest: manifestDigest(result.manifest), warnings: result.warnings.map(formatIssue) }
        : { file, valid: false as const, errors: result.errors.map(formatIssue) });
    }
    if (args.output === 'json') printJson(io, results);
    else for (const r of results) {
      if (r.valid) {
        io.out(`OK ${r.file} (${r.release}, digest ${r.digest})`);
        for (const w of r.warnings) io.err(`warning: ${w}`);
      }
      else for (const e of r.errors) io.err(e);
    }
    return results.every((r) => r.valid) ? 0 : 1;
  },
};

export const manifestsSchema: Command = {
  usage: 'berth manifests schema',
  about: 'print the JSON Schema of the manifest format, for editors',
  options: {},
  examples: ['berth manifests schema > berth-manifest.schema.json'],
  async run({ io, args, usage }) {
    requirePositionals(args, [], usage);
    io.out(manifestJsonSchemaText().trimEnd());
    return 0;
  },
};
