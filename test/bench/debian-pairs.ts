import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Realistic layer pairs for the delta bench: Debian bookworm package sets before and after an
 * upgrade, from the packages apt offers in two versions (bookworm vs bookworm-updates/-security,
 * or two point releases). The .debs are fetched once with `apt-get download` into a cache dir
 * (BERTH_BENCH_DEB_CACHE, default ~/.cache/berth-bench/debs) and reused; `npm test` never uses
 * any of this. Layers are unpacked with dpkg-deb and tarred by GNU tar (sorted, owner 0, package
 * mtimes kept, as a layer built by installing the packages keeps them).
 */

export interface DebianPair {
  key: string;
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

function layerTar(debs: string[], out: string, scratch: string): void {
  const root = mkdtempSync(join(scratch, 'root-'));
  try {
    for (const deb of debs) run('dpkg-deb', ['-x', deb, root]);
    run('tar', ['--create', '--format=pax', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--pax-option=delete=atime,delete=ctime', '--file', out, '-C', root, '.']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
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
  const pair = { key, metric, base: join(dir, `${key}-v1.tar`), target: join(dir, `${key}-v2.tar`), packages: before.length, upgraded };
  layerTar(before, pair.base, dir);
  layerTar(after, pair.target, dir);
  return pair;
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
