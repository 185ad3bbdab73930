import { parseArgs } from 'node:util';
import { access } from 'node:fs/promises';
import { manifestJsonSchemaText } from './json-schema.js';
import { writeKeyPair } from '../protocol/keys.js';
import { formatIssue, loadManifestFile, manifestDigest } from './parse.js';

/**
 * `berth manifest validate FILE…`, `berth manifest schema`, `berth keygen --out FILE`.
 * Output goes through the given writers so tests read exactly what a user would see.
 */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}
const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

const MANIFEST_USAGE = `usage: berth manifest validate FILE…   check manifests (YAML or JSON); exit 0 only if all are valid
       berth manifest schema           print the JSON Schema of the manifest format`;

export async function manifestMain(argv: string[], io: Io = consoleIo): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    (verb ? io.out : io.err)(MANIFEST_USAGE);
    return verb ? 0 : 2;
  }
  if (verb === 'schema') {
    io.out(manifestJsonSchemaText().trimEnd());
    return 0;
  }
  if (verb !== 'validate') {
    io.err(`berth manifest: unknown verb ${JSON.stringify(verb)}\n${MANIFEST_USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(MANIFEST_USAGE);
    return 0;
  }
  const files = rest.filter((a) => a !== '--');
  const flag = files.find((f) => f.startsWith('-'));
  if (flag || files.length === 0) {
    io.err(flag ? `berth manifest validate: unknown option ${flag}` : MANIFEST_USAGE);
    return 2;
  }
  let allValid = true;
  for (const file of files) {
    const result = await loadManifestFile(file);
    if (result.ok) {
      io.out(`OK ${file} (${result.manifest.name}@${result.manifest.version}, digest ${manifestDigest(result.manifest)})`);
    } else {
      allValid = false;
      for (const issue of result.errors) io.err(formatIssue(issue));
    }
  }
  return allValid ? 0 : 1;
}

const KEYGEN_USAGE = `usage: berth keygen --out FILE
  writes an Ed25519 key pair: FILE (private, PKCS#8 PEM, mode 0600) and FILE.pub (SPKI PEM),
  and prints the public key as the base64url of its 32 raw bytes (what a manufacturer records)`;

export async function keygenMain(argv: string[], io: Io = consoleIo): Promise<number> {
  let out: string | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      io.out(KEYGEN_USAGE);
      return 0;
    }
    out = values.out;
  } catch (err) {
    io.err(`berth keygen: ${(err as Error).message}\n${KEYGEN_USAGE}`);
    return 2;
  }
  if (!out) {
    io.err(`berth keygen: --out FILE is required\n${KEYGEN_USAGE}`);
    return 2;
  }
  // Check both names first so a refusal leaves nothing half-written (writeKeyPair itself refuses FILE with 'wx').
  for (const path of [out, out + '.pub']) {
    if (await exists(path)) {
      io.err(`berth keygen: ${path} already exists; refusing to overwrite a key (move it away or choose another --out)`);
      return 1;
    }
  }
  try {
    io.out(await writeKeyPair(out));
  } catch (err) {
    io.err(`berth keygen: cannot write ${out}: ${(err as Error).message}`);
    return 1;
  }
  return 0;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
