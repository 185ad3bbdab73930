/**
 * `berth apply --dry-run` and `--diff` (issue 16): what publishing a file would store, asked of the
 * server (`POST /v1/manifests/dry-run`, which validates and pins the tags exactly as publishing
 * does and writes nothing), and how it differs from the version of that name published last.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { z } from 'zod';
import { formatIssue } from '../manifests/parse.js';
import { publishRefusal, type publishPreview } from '../protocol/manifests.js';
import type { BerthClient } from './client.js';
import { printJson, type Io } from './context.js';
import { CliError } from './errors.js';
import { renderTable } from './format.js';
import { ApiError } from './http.js';
import { toDiff, type ManifestDiff } from './views.js';
import { renderDiff } from './commands/manifests.js';
import { printPrivileges } from './commands/policies.js';
import { printVariables } from './commands/vars.js';

export type Preview = z.infer<typeof publishPreview>;

/** The manifest file given to `-f` (`-` is stdin) and the name the server reports problems under. */
export async function readManifestSource(io: Io, file: string): Promise<{ source: string; filename: string }> {
  let source: string;
  try {
    source = file === '-' ? await io.readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path given to -f');
  }
  if (!source.trim()) throw new CliError(`manifest ${file} is empty`, 'write a Compose-style manifest with name, version and services', 2);
  return { source, filename: file === '-' ? 'stdin' : basename(file) };
}

/**
 * A 422 refusal of a publish or a dry run, one problem a line on stderr (`-o json`: the server's
 * refusal on stdout); returns the exit code, or undefined when `err` is not such a refusal.
 */
export function printRefusal(io: Io, err: unknown, file: string, doing: string, json: boolean): number | undefined {
  const refusal = err instanceof ApiError && err.server.status === 422 ? publishRefusal.safeParse(err.server.body) : undefined;
  if (!refusal?.success) return undefined;
  if (json) printJson(io, refusal.data);
  const list = 'errors' in refusal.data ? refusal.data.errors.map(formatIssue) : refusal.data.problems.map((p) => `service ${p.service}: ${p.image}: ${p.message}`);
  io.err(`berth: ${doing} ${file} failed: ${list.length} problem(s), nothing was published [422 ${refusal.data.error.code}]`);
  for (const line of list) io.err(`  ${line}`);
  return 1;
}

/** Asks the server what publishing would do; a refusal is printed and comes back as its exit code. */
export async function previewOf(io: Io, client: BerthClient, file: string, read: { source: string; filename: string }, json: boolean): Promise<Preview | number> {
  const { source, filename } = read;
  try {
    return await client.previewManifest(source, filename);
  } catch (err) {
    const code = printRefusal(io, err, file, 'checking', json);
    if (code === undefined) throw err;
    return code;
  }
}

/** The stable JSON of `apply --dry-run`: `apply`'s shape without the publishing fields, plus what publishing would do. */
export function previewView(p: Preview): Record<string, unknown> {
  return {
    name: p.name,
    version: p.version,
    digest: p.digest,
    services: Object.fromEntries(Object.entries(p.spec.services).map(([name, s]) => [name, s.image])),
    spec: p.spec,
    privileges: p.privileges,
    variables: p.variables,
    warnings: p.warnings,
    outcome: p.outcome,
    publishedDigest: p.publishedDigest,
    latest: p.latest,
    diff: p.diff ? toDiff(p.diff) : null,
  };
}

/** Pure: what publishing would do, in one line. */
export function outcomeLine(p: Preview): string {
  const release = `${p.name}@${p.version}`;
  if (p.outcome === 'new') return `dry run: ${release} would be published  ${p.digest}`;
  if (p.outcome === 'unchanged') return `dry run: ${release} is already published with this content; publishing would change nothing`;
  return `dry run: ${release} is already published with other content (${p.publishedDigest}); publishing would be refused (409): publish a new version`;
}

/** Pure: the change from the latest version, as `manifests diff` shows it. */
export function diffLines(p: Pick<Preview, 'latest' | 'diff' | 'name' | 'version'>): string {
  if (!p.latest || !p.diff) return `no version of ${p.name} is published yet: everything is new`;
  const diff: ManifestDiff = toDiff(p.diff);
  return `changes from ${p.latest.release} (the version published last) to this file:\n${renderDiff(diff)}`;
}

/** `apply --dry-run` for people: the outcome, each pinned image, privileges, variables, the diff when asked. */
export function printPreview(io: Io, p: Preview, withDiff: boolean): number {
  io.out(outcomeLine(p));
  const rows = Object.entries(p.spec.services).map(([service, s]) => ({ service, image: s.image }));
  if (rows.length) io.out(renderTable([{ header: 'service', get: (r) => r.service }, { header: 'pinned image', get: (r) => r.image }], rows));
  printPrivileges(io, p.privileges);
  printVariables(io, p.variables);
  if (withDiff) io.out(diffLines(p));
  for (const w of p.warnings) io.err(`warning: ${formatIssue(w)}`);
  io.out('nothing was published (--dry-run)');
  // A version publishing would refuse fails the dry run, so a pipeline stops before it tries.
  return p.outcome === 'conflict' ? 1 : 0;
}
