import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../cli/index.js';
import type { Io } from '../../cli/context.js';
import { importPublicKey, loadPrivateKey, publicKeyToRaw } from '../../protocol/keys.js';
import { manifestDigest, parseManifest } from '../../manifests/parse.js';

/**
 * The verbs that need no server: `manifests validate|schema` (also spelled `manifest`, as before
 * they joined the noun) and `keygen`, driven through the CLI's own entry point.
 */
function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout, stderr, out: (l) => void stdout.push(l), err: (l) => void stderr.push(l), isTTY: false, env: {}, readStdin: async () => '', stdinIsTTY: false,
    promptSecret: async () => '', now: () => new Date(), sleep: async () => undefined, home: '/nonexistent',
  };
}
const manifestMain = (argv: string[], io: Io) => run(['manifest', ...argv], io);
const keygenMain = (argv: string[], io: Io) => run(['keygen', ...argv], io);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = 'name: app\nversion: 1.2.3\nservices:\n  web: { image: registry.example.com/acme/web:1 }\n';

describe('berth manifests validate (and the old spelling, manifest validate)', () => {
  it('prints OK with name, version and digest for each valid file, exit 0', async () => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.json');
    await writeFile(a, GOOD);
    await writeFile(b, JSON.stringify({ name: 'other', version: '0.0.1', services: { x: { image: 'registry.example.com/x:1' } } }));
    const io = capture();
    expect(await manifestMain(['validate', a, b], io)).toBe(0);
    const parsed = parseManifest(GOOD, a);
    if (!parsed.ok) throw new Error('fixture invalid');
    expect(io.stdout[0]).toBe(`OK ${a} (app@1.2.3, digest ${manifestDigest(parsed.manifest)})`);
    expect(io.stdout[1]).toMatch(new RegExp(`^OK ${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(other@0\\.0\\.1, digest sha256:[a-f0-9]{64}\\)$`));
    expect(io.stderr).toEqual([]);
  });

  it('prints every error of every invalid file and exits 1 when any is invalid', async () => {
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    await writeFile(good, GOOD);
    await writeFile(bad, GOOD.replace('{ image: registry.example.com/acme/web:1 }', '{ image: registry.example.com/acme/web:1, build: ., mem_limit: huge }'));
    const io = capture();
    expect(await manifestMain(['validate', good, bad, join(dir, 'missing.yaml')], io)).toBe(1);
    expect(io.stdout).toHaveLength(1);
    expect(io.stderr).toEqual([
      `${bad}:4:60: services.web.mem_limit: expected a size like 128M, 1g, 512k or a number of bytes, got "huge"`,
      `${bad}:4:50: services.web.build: not supported (Berth deploys published images; build and push elsewhere, then reference the image)`,
      `${join(dir, 'missing.yaml')}: cannot read: ENOENT`,
    ]);
  });

  it('validates the shipped examples', async () => {
    const ex = join(import.meta.dirname, '../../manifests/examples');
    const io = capture();
    expect(await manifestMain(['validate', join(ex, 'weather-station.yaml'), join(ex, 'minimal.yaml'), join(ex, 'stop-then-start.yaml')], io)).toBe(0);
    expect(io.stdout).toHaveLength(3);
  });

  it('needs files and known verbs', async () => {
    expect(await manifestMain(['validate'], capture())).toBe(2);
    expect(await manifestMain(['validate', '--bogus', 'x'], capture())).toBe(2);
    const unknown = capture();
    expect(await manifestMain(['lint', 'x'], unknown)).toBe(2);
    expect(unknown.stderr[0]).toBe('berth: manifests has no subcommand "lint"; use one of: list, show, diff, validate, schema (did you mean list?)');
    expect(await manifestMain([], capture())).toBe(2);
  });

  it('answers the same under both spellings, in JSON too', async () => {
    const a = join(dir, 'a.yaml');
    await writeFile(a, GOOD);
    const old = capture();
    const now = capture();
    expect(await run(['manifest', 'validate', a, '-o', 'json'], old)).toBe(0);
    expect(await run(['manifests', 'validate', a, '--output', 'json'], now)).toBe(0);
    expect(now.stdout).toEqual(old.stdout);
    expect(JSON.parse(now.stdout.join('\n'))).toEqual([{ file: a, valid: true, release: 'app@1.2.3', digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/), warnings: [] }]);
  });

  it('prints the warnings of a valid file on stderr (container_name, pull_policy), still exit 0', async () => {
    const a = join(dir, 'warn.yaml');
    await writeFile(a, GOOD.replace('{ image: registry.example.com/acme/web:1 }', '{ image: registry.example.com/acme/web:1, container_name: web1, pull_policy: always }'));
    const io = capture();
    expect(await run(['manifests', 'validate', a], io)).toBe(0);
    expect(io.stdout[0]).toMatch(/^OK /);
    expect(io.stderr).toEqual([
      `warning: ${a}:4:50: services.web.container_name: Berth names the container itself; "web1" becomes the service's hostname and network alias, so other services still reach it by that name`,
      `warning: ${a}:4:72: services.web.pull_policy: ignored: Berth pins every image by digest at publish and the gateway downloads exactly that`,
    ]);
  });

  it('prints the JSON Schema', async () => {
    const io = capture();
    expect(await manifestMain(['schema'], io)).toBe(0);
    const schema = JSON.parse(io.stdout.join('\n'));
    expect(schema.title).toBe('Berth deployment manifest');
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'version', 'services']));
  });
});

describe('berth keygen', () => {
  it('writes the key pair and prints the raw public key on one line', async () => {
    const file = join(dir, 'device.key');
    const io = capture();
    expect(await keygenMain(['--out', file], io)).toBe(0);
    expect(io.stdout).toHaveLength(1);
    expect(io.stdout[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const pub = importPublicKey(await readFile(file + '.pub', 'utf8'));
    expect(publicKeyToRaw(pub)).toBe(io.stdout[0]);
    expect((await loadPrivateKey(file)).asymmetricKeyType).toBe('ed25519');
  });

  it('refuses to overwrite either file, leaving both untouched', async () => {
    const file = join(dir, 'k');
    await writeFile(file + '.pub', 'keep');
    const io = capture();
    expect(await keygenMain(['--out', file], io)).toBe(1);
    expect(io.stderr).toEqual([`berth: ${file}.pub already exists; refusing to overwrite a key`, '  move it away or choose another --out']);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);

    await writeFile(file, 'keep');
    const io2 = capture();
    expect(await keygenMain(['--out', file], io2)).toBe(1);
    expect(io2.stderr[0]).toContain(`${file} already exists`);
    expect(await readFile(file, 'utf8')).toBe('keep');
  });

  it('requires --out', async () => {
    const io = capture();
    expect(await keygenMain([], io)).toBe(2);
    expect(io.stderr[0]).toBe('berth: --out is required');
    expect(await keygenMain(['--bogus'], capture())).toBe(2);
  });
});
