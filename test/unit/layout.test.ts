import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '../..'));
/** Every folder of shipped code; the four components never import each other (bin/ and scripts/ wire them). */
const SOURCE_DIRS = ['bin', 'cli', 'common', 'manifests', 'protocol', 'control-plane', 'registry-proxy', 'edge-daemon', 'scripts'];
const COMPONENTS = new Set(['cli', 'control-plane', 'registry-proxy', 'edge-daemon']);
const folderOf = (file: string) => relative(root, file).split('/')[0];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports (type-only ones too: a type cycle is still a cycle for a reader) that resolve to a file here. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = normalize(join(dirname(file), m[1].replace(/\.js$/, '.ts')));
    if (existsSync(target) && SOURCE_DIRS.includes(folderOf(target))) out.push(target);
  }
  return out;
}

/** Every import cycle as the path that closes it (depth-first search, each back edge once). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (v: string) => {
    state.set(v, 'open');
    path.push(v);
    for (const w of graph.get(v) ?? []) {
      if (state.get(w) === 'open') found.push([...path.slice(path.indexOf(w)), w]);
      else if (!state.has(w)) visit(w);
    }
    path.pop();
    state.set(v, 'done');
  };
  for (const v of graph.keys()) if (!state.has(v)) visit(v);
  return found;
}

describe('source layout', () => {
  const files = SOURCE_DIRS.flatMap((d) => sources(join(root, d)));

  it('keeps components apart: none imports another', () => {
    const crossing = files.flatMap((f) =>
      importsOf(f)
        .filter((t) => COMPONENTS.has(folderOf(t)) && folderOf(t) !== folderOf(f) && !['bin', 'scripts'].includes(folderOf(f)))
        .map((t) => `${relative(root, f)} -> ${relative(root, t)}`),
    );
    expect(crossing).toEqual([]);
  });

  it('has no import cycles', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    expect(cycles(graph).map((c) => c.map((f) => relative(root, f)).join(' -> '))).toEqual([]);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('keeps every source file under 400 lines', () => {
    const long = files.map((f) => ({ file: relative(root, f), lines: readFileSync(f, 'utf8').split('\n').length })).filter((f) => f.lines > 400);
    expect(long).toEqual([]);
  });
});
