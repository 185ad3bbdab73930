import { parseDocument } from 'yaml';
import { parseManifest } from '../../manifests/parse.js';
import { MAX_MANIFEST_ENTRIES } from '../../manifests/yaml-limits.js';
import { compare, repeat, type Bench, type BenchRow } from './stats.js';

/**
 * Hostile input against the control plane's event loop (issue 14): how long one call holds the
 * loop. Parsing is synchronous, so the time of the call is the time the loop is blocked; the
 * target is about 100 ms on this machine.
 */

/** One service with `n` environment variables. */
function manifestWith(n: number): string {
  const env = Array.from({ length: n }, (_, i) => `      K${i}: v${i}`).join('\n');
  return `name: bench\nversion: 1.0.0\nservices:\n  a:\n    image: registry.example.com/a@sha256:${'a'.repeat(64)}\n    environment:\n${env}\n`;
}

function timed(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

export const bench: Bench = {
  name: 'input-limits',
  title: 'hostile input: event-loop block per call',
  async run({ quick, log }) {
    const runs = quick ? 1 : 5;
    const rows: BenchRow[] = [];
    const atCap = manifestWith(MAX_MANIFEST_ENTRIES - 20);
    // Warm the parser and the schemas once: the first call also compiles.
    parseManifest(manifestWith(10), 'warm.yaml');
    log(`manifest at the cap: ${MAX_MANIFEST_ENTRIES - 20} keys, ${atCap.length} bytes`);
    const berth = await repeat(runs, async () => timed(() => parseManifest(atCap, 'cap.yaml')));
    // What the control plane did before (finding 5): the YAML library's quadratic duplicate-key check.
    const before = await repeat(quick ? 1 : 3, async () => timed(() => parseDocument(atCap, { uniqueKeys: true, merge: true })));
    rows.push(compare('input-limits', `parse a manifest of ${MAX_MANIFEST_ENTRIES - 20} keys`, 'ms', berth, 'yaml uniqueKeys (before)', before, 'lower is better; target ≈ 100 ms'));
    // The finding's file: 40,000 keys (469 KB), 28.7 s before; refused unparsed now.
    const big = manifestWith(40_000);
    const refused = await repeat(runs, async () => timed(() => parseManifest(big, 'big.yaml')));
    rows.push({ bench: 'input-limits', metric: `refuse a manifest of 40,000 keys (${Math.round(big.length / 1024)} KiB)`, unit: 'ms', berth: refused, note: 'before: 28.7 s; target ≈ 100 ms' });
    return rows;
  },
};
