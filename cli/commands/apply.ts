import { requireFlag } from '../args.js';
import { printJson, type Command } from '../context.js';
import { renderTable } from '../format.js';
import { formatIssue } from '../../manifests/parse.js';
import { diffLines, previewOf, previewView, printPreview, printRefusal, readManifestSource } from '../preview.js';
import { printPrivileges } from './policies.js';
import { printVariables } from './vars.js';

export const apply: Command = {
  usage: 'berth apply -f FILE [--dry-run] [--diff]   (FILE may be - for stdin)',
  about: 'publish a manifest: every image tag is pinned to its digest; prints name@version and the digests',
  options: {
    file: { type: 'string', short: 'f', value: 'FILE', complete: 'file', description: 'the manifest (YAML or JSON); - reads stdin (required)' },
    'dry-run': { type: 'boolean', description: 'validate, pin every tag and print the result and its privileges; publish nothing (exit 1 when publishing would be refused)' },
    diff: { type: 'boolean', description: 'print the change from the version of that name published last (then publish, unless --dry-run)' },
  },
  examples: ['berth apply -f demo.yaml', 'berth apply -f demo.yaml --dry-run --diff', 'berth apply -f demo.yaml -o json', 'cat demo.yaml | berth apply -f -'],
  async run({ io, args, usage, client }) {
    const file = requireFlag(args, 'file', usage);
    const json = args.output === 'json';
    const dryRun = args.values['dry-run'] === true;
    const withDiff = args.values.diff === true;
    // Read once: stdin (-f -) cannot be read again for the publish after the preview.
    const read = await readManifestSource(io, file);
    if (dryRun || withDiff) {
      const preview = await previewOf(io, await client(), file, read, json);
      if (typeof preview === 'number') return preview;
      if (dryRun) {
        if (json) { printJson(io, previewView(preview)); return preview.outcome === 'conflict' ? 1 : 0; }
        return printPreview(io, preview, withDiff);
      }
      // --diff alone: the change first (on stderr with -o json, so stdout stays the publish answer), then publish.
      (json ? io.err : io.out)(diffLines(preview));
    }
    let result;
    try {
      result = await (await client()).publishManifest(read.source, read.filename);
    } catch (err) {
      // One problem per line, each with file:line:col and key path: a real file's problems joined would fill a screen.
      const code = printRefusal(io, err, file, 'publishing', json);
      if (code === undefined) throw err;
      return code;
    }
    if (json) {
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
