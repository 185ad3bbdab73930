import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, linkSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { baselineCacheDir, recomputeBaselines } from './baseline-cache.js';

/**
 * Realistic layer pairs for the delta bench: Debian bookworm package sets before and after an
 * upgrade, from the packages apt offers in two versions (bookworm vs bookworm-updates/-security,
 * or two point releases). The .debs are fetched once with `apt-get download` into a cache dir
 * (BERTH_BENCH_DEB_CACHE, default ~/.cache/berth-bench/debs) and reused; `npm test` never uses
 * any of this. Layers are unpacked with dpkg-deb and tarred by GNU tar (sorted, owner 0, package
 * mtimes kept, as a layer built by installing the packages keeps them). The layer tars are a pure
 * function of the .debs (named by package and version) and the tar arguments, so they are kept too,
 * in <baseline cache>/layers, keyed by both, and checked against their recorded sha256 before use:
 * building the base pair (dpkg-deb -x of 176 packages) took minutes on a loaded machine.
 */

export interface DebianPair {
  key: string;
  /** Whether both layer tars came from the cache (built from the same .debs before). */
  cached: boolean;
  metric: string;
  /** Paths of the two layer tars, in `dir`. */
  base: string;
  target: string;
  packages: number;
  upgraded: number;
}

/** A minimal bookworm root (what debootstrap --variant=minbase installs, roughly). */
const ROOT_SEEDS = ['apt', 'base-files', 'bash', 'coreutils', 'dash', 'dpkg', 'findutils', 'grep', 'gzip', 'login', 'mount', 'passwd', 'perl-base', 'sed', 'tar', 'tzdata', 'util-linux', 'libc-bin'];
/** An application layer on top of it: Python with TLS, HTTP and XML libraries. */
const APP_PACKAGES = [
  'python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib', 'openssl', 'libssl3', 'curl', 'libcurl4', 'libxml2', 'libexpat1',
  'libsqlite3-0', 'libnghttp2-14', 'libssh2-1', 'libbrotli1', 'libsasl2-2', 'media-types', 'libffi8', 'libreadline8', 'libncursesw6',
];

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

function closure(seeds: string[]): string[] {
  const out = run('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...seeds]);
  return [...new Set(out.split('\n').filter((l) => l && !l.startsWith(' ') && !l.includes('<')))].sort();
}

const newer = (a: string, b: string): boolean => spawnSync('dpkg', ['--compare-versions', a, 'gt', b]).status === 0;

/**
 * The versions apt knows of each package, oldest first. One `apt-cache madison` for all of them:
 * each call loads apt's whole cache (about 1 s of CPU, 3 s on a loaded machine), so one call per
 * package took minutes for the base layer's ~90 packages.
 */
function versionsOf(pkgs: string[]): Map<string, string[]> {
  const found = new Map<string, Set<string>>();
  for (const line of run('apt-cache', ['madison', ...pkgs]).split('\n')) {
    const [name, version] = line.split('|').map((f) => f.trim());
    if (!name || !version) continue;
    if (!found.has(name)) found.set(name, new Set());
    found.get(name)!.add(version);
  }
  const out = new Map<string, string[]>();
  for (const pkg of pkgs) out.set(pkg, [...(found.get(pkg) ?? [])].sort((a, b) => (a === b ? 0 : newer(a, b) ? 1 : -1)));
  return out;
}

function debFile(cache: string, pkg: string, version: string): string {
  const wanted = `${pkg}_${version.replace(':', '%3a')}_`;
  const have = readdirSync(cache).find((f) => f.startsWith(wanted) && f.endsWith('.deb'));
  if (have) return join(cache, have);
  const r = spawnSync('apt-get', ['download', '-q', `${pkg}=${version}`], { cwd: cache, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`apt-get download ${pkg}=${version} failed (is apt-get update done and the mirror reachable?): ${r.stderr.slice(-500)}`);
  const got = readdirSync(cache).find((f) => f.startsWith(wanted) && f.endsWith('.deb'));
  if (!got) throw new Error(`apt-get download ${pkg}=${version} left no ${wanted}*.deb in ${cache}`);
  return join(cache, got);
}

const TAR_ARGS = ['--create', '--format=pax', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--pax-option=delete=atime,delete=ctime'];

/**
 * Gives every entry the extraction touched (mtime at or after `since`: directories a later package
 * added to, the root) the newest mtime among the packages' own entries, so the same .debs give the
 * same tar, byte for byte, in every build (about 95 directories of the base layer carried the build
 * time, and the zstd baseline keyed by the tars' digests missed on every run).
 */
function settleMtimes(root: string, since: number): void {
  const all: { path: string; link: boolean; mtimeMs: number }[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      all.push({ path, link: e.isSymbolicLink(), mtimeMs: lstatSync(path).mtimeMs });
      if (e.isDirectory()) walk(path);
    }
  };
  walk(root);
  all.push({ path: root, link: false, mtimeMs: lstatSync(root).mtimeMs });
  const fixed = Math.max(0, ...all.filter((e) => e.mtimeMs < since).map((e) => e.mtimeMs)) / 1000;
  for (const e of all) if (e.mtimeMs >= since) (e.link ? lutimesSync : utimesSync)(e.path, fixed, fixed);
}

function layerTar(debs: string[], out: string, scratch: string): void {
  const since = Date.now() - 1000;
  const root = mkdtempSync(join(scratch, 'root-'));
  try {
    for (const deb of debs) run('dpkg-deb', ['-x', deb, root]);
    settleMtimes(root, since);
    run('tar', [...TAR_ARGS, '--file', out, '-C', root, '.']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function sha256File(path: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return 'sha256:' + hash.digest('hex');
}

/**
 * The layer tar of `debs` at `out`: a hard link to the cached one when it is there and still has
 * the digest recorded when it was made, else built and stored. Returns whether it came from the cache.
 */
function cachedLayerTar(debs: string[], out: string, scratch: string): boolean {
  const key = createHash('sha256').update(JSON.stringify([TAR_ARGS, debs.map((d) => basename(d))])).digest('hex');
  const dir = join(baselineCacheDir(), 'layers');
  const tar = join(dir, `${key}.tar`);
  const meta = join(dir, `${key}.json`);
  if (!recomputeBaselines() && existsSync(tar) && existsSync(meta)) {
    const { diffId } = JSON.parse(readFileSync(meta, 'utf8')) as { diffId?: string };
    if (diffId && sha256File(tar) === diffId) {
      try {
        linkSync(tar, out);
      } catch {
        copyFileSync(tar, out);
      }
      return true;
    }
  }
  layerTar(debs, out, scratch);
  mkdirSync(dir, { recursive: true });
  // Figures written last and both renamed into place: a reader never sees a torn entry.
  rmSync(meta, { force: true });
  const tmp = `${tar}.${process.pid}.tmp`;
  copyFileSync(out, tmp);
  renameSync(tmp, tar);
  writeFileSync(`${meta}.${process.pid}.tmp`, JSON.stringify({ diffId: sha256File(tar), debs: debs.map((d) => basename(d)) }, null, 2) + '\n');
  renameSync(`${meta}.${process.pid}.tmp`, meta);
  return false;
}

/**
 * One layer of `packages` before and after: the second-newest version of each package that apt
 * has in several versions against its newest (one refresh), the others the same in both.
 */
function buildPair(key: string, metric: string, packages: string[], cache: string, dir: string): DebianPair {
  const before: string[] = [];
  const after: string[] = [];
  let upgraded = 0;
  const versions = versionsOf(packages);
  for (const pkg of packages) {
    const vs = versions.get(pkg) ?? [];
    if (vs.length === 0) continue;
    const newest = vs[vs.length - 1];
    const prior = vs.length > 1 ? vs[vs.length - 2] : newest;
    if (prior !== newest) upgraded++;
    before.push(debFile(cache, pkg, prior));
    after.push(debFile(cache, pkg, newest));
  }
  const base = join(dir, `${key}-v1.tar`);
  const target = join(dir, `${key}-v2.tar`);
  const baseCached = cachedLayerTar(before, base, dir);
  const targetCached = cachedLayerTar(after, target, dir);
  return { key, metric, base, target, packages: before.length, upgraded, cached: baseCached && targetCached };
}

/** The pairs named in `keys` (default both): `debian-base`, `python-app`. */
export function debianPairs(dir: string, log: (m: string) => void, keys = ['debian-base', 'python-app']): DebianPair[] {
  const cache = process.env.BERTH_BENCH_DEB_CACHE ?? join(homedir(), '.cache', 'berth-bench', 'debs');
  mkdirSync(cache, { recursive: true });
  if (!existsSync('/usr/bin/dpkg-deb') || !existsSync('/usr/bin/apt-get')) throw new Error('the delta bench needs Debian (apt-get, dpkg-deb) for its realistic pairs');
  log(`deltas: building ${keys.join(', ')} from the .debs in ${cache} (the first run downloads them)`);
  const pairs: DebianPair[] = [];
  if (keys.includes('debian-base')) pairs.push(buildPair('debian-base', 'Debian bookworm base layer, packages upgraded', closure(ROOT_SEEDS), cache, dir));
  if (keys.includes('python-app')) pairs.push(buildPair('python-app', 'Python app layer after a security refresh', APP_PACKAGES, cache, dir));
  return pairs;
}
