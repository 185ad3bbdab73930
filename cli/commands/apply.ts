import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { requireFlag } from '../args.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { ApiError } from '../http.js';
import { publishRefusal } from '../../protocol/manifests.js';
import { renderTable } from '../format.js';
import { formatIssue } from '../../manifests/parse.js';
import { printPrivileges } from './policies.js';
import { printVariables } from './vars.js';

export const apply: Command = {
  usage: 'berth apply -f FILE   (FILE may be - for stdin)',
  about: 'publish a manifest: every image tag is pinned to its digest; prints name@version and the digests',
  options: { file: { type: 'string', short: 'f', value: 'FILE', complete: 'file', description: 'the manifest (YAML or JSON); - reads stdin (required)' } },
  examples: ['berth apply -f demo.yaml', 'berth apply -f demo.yaml -o json', 'cat demo.yaml | berth apply -f -'],
  async run({ io, args, usage, client }) {
    const file = requireFlag(args, 'file', usage);
    let source: string;
    try {
      source = file === '-' ? await io.readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path given to -f');
    }
    if (!source.trim()) throw new CliError(`manifest ${file} is empty`, 'write a Compose-style manifest with name, version and services', 2);
    let result;
    try {
      result = await (await client()).publishManifest(source, file === '-' ? 'stdin' : basename(file));
    } catch (err) {
      const refusal = err instanceof ApiError && err.server.status === 422 ? publishRefusal.safeParse(err.server.body) : undefined;
      if (!refusal?.success) throw err;
      // One problem per line, each with file:line:col and key path: a real file's problems joined would fill a screen.
      if (args.output === 'json') printJson(io, refusal.data);
      const list = 'errors' in refusal.data ? refusal.data.errors.map(formatIssue) : refusal.data.problems.map((p) => `service ${p.service}: ${p.image}: ${p.message}`);
      io.err(`berth: publishing ${file} failed: ${list.length} problem(s), nothing was published [422 ${refusal.data.error.code}]`);
      for (const line of list) io.err(`  ${line}`);
      return 1;
    }
    if (args.output === 'json') {
      printJson(io, result);
      return 0;
    }
    io.out(`${result.created ? 'published' : 'unchanged (already published with this content)'} ${result.name}@${result.version}  ${result.digest}`);
    const rows = Object.entries(result.services).map(([service, image]) => ({ service, image }));
    if (rows.length) io.out(renderTable([{ header: 'service', get: (r) => r.service }, { header: 'pinned image', get: (r) => r.image }], rows));
    printPrivileges(io, result.privileges);
    printVariables(io, result.variables);
    for (const w of result.warnings) io.err(`warning: ${formatIssue(w)}`);
    return 0;
  },
};
