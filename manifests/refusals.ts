import type { RawIssue } from './semantics.js';

/**
 * Why a Compose key a user may well write is refused; keys not listed here get a plain
 * "not supported" (with a "did you mean" when it looks like a typo of a known key). Keeps the
 * refusal a decision the author can understand, not a mystery.
 */
export const UNSUPPORTED_WHY: Record<string, string> = {
  build: 'Berth deploys published images; build and push elsewhere, then reference the image',
  configs: 'put configuration in environment, a bind mount or the image',
  env_file: "an env file lives on the author's machine; write the variables under environment",
  extends: 'extends reads another file on the author\'s machine; write the service out in full',
  links: 'services of a manifest reach each other by name on their networks',
  external_links: 'services reach only the services of their own manifest by name',
  volumes_from: 'mount the named volume directly',
  include: 'a manifest is one file',
  profiles: 'every service of a manifest runs on every gateway it is rolled out to; make a manifest per variant',
  scale: 'each service runs once per gateway',
  replicas: 'each service runs once per gateway',
  propagation: "mount propagation would let the container change the gateway's mounts",
  mac_address: 'the engine assigns addresses on Berth\'s per-release networks',
  ipv4_address: 'the engine assigns addresses on Berth\'s per-release networks',
  ipv6_address: 'the engine assigns addresses on Berth\'s per-release networks',
  external: 'Berth creates and removes the networks of each release itself',
  ipam: 'Berth creates and removes the networks of each release itself',
  driver_opts: 'only plain bridge networks and local volumes are supported',
  driver: 'only plain bridge networks and local volumes are supported',
  userns_mode: "user namespaces are the engine's setting",
  cgroup_parent: "the container's cgroup is the engine's choice",
  runtime: "the runtime is the engine's setting",
  devices_cgroup_rules: 'map the device itself under devices',
};

/** Levenshtein distance, small strings only (key names). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The known key closest to a typo (`enviroment` → `environment`), when it is close enough to be one. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  // A different case alone (`Image`) is distance 0 here and still worth naming.
  return best !== undefined && best !== key && bestD <= Math.max(1, Math.floor(key.length / 4)) ? best : undefined;
}

/** The message for an unknown key: its reason when Berth refuses it on purpose, else a suggestion. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  if (Object.hasOwn(UNSUPPORTED_WHY, key)) return `not supported (${UNSUPPORTED_WHY[key]})`;
  const guess = didYouMean(key, known);
  return guess ? `not supported; did you mean ${guess}?` : 'not supported';
}

type Raw = Record<string, unknown>;
const isMap = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys Berth accepts with a warning: they deploy, but not quite as the author may expect. */
export function composeWarnings(doc: unknown): RawIssue[] {
  if (!isMap(doc) || !isMap(doc.services)) return [];
  const out: RawIssue[] = [];
  for (const [name, s] of Object.entries(doc.services)) {
    if (!isMap(s)) continue;
    if (typeof s.container_name === 'string') {
      const mode = typeof s.network_mode === 'string' ? s.network_mode : undefined;
      const shared = mode === 'host' || mode?.startsWith('service:');
      const becomes = shared
        ? `with network_mode: ${mode} the service has no name of its own, so ${JSON.stringify(s.container_name)} is not used`
        : `${JSON.stringify(s.container_name)} becomes the service's hostname and network alias, so other services still reach it by that name`;
      out.push({ path: ['services', name, 'container_name'], message: `Berth names the container itself; ${becomes}` });
    }
    if (s.pull_policy !== undefined) out.push({ path: ['services', name, 'pull_policy'], message: 'ignored: Berth pins every image by digest at publish and the gateway downloads exactly that' });
  }
  return out;
}
