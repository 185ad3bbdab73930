/**
 * Reads a V8 .cpuprofile (what `node --cpu-prof` writes) into a flame summary: self time per
 * function and per module (a node_modules package or a project file), as shares of the samples.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  ms: number;
  percent: number;
  /** Where the time was spent from: the nearest project function up the stack (name file:line), by share of this row. */
  from?: { name: string; percent: number }[];
}

/** A frame's module: `pkg` for node_modules/pkg/…, the path inside dist/ for project files, `node:x` for built-ins. */
export function moduleOf(url: string): string {
  if (!url) return '(native/V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 6);
  return url.replace(/^file:\/\//, '');
}

/** Self time by function (name, module, line) and by module, largest first; idle and GC kept as their own rows. */
export function summarize(p: CpuProfile, top = 25): { totalMs: number; functions: SelfTime[]; modules: SelfTime[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // The project frame nearest the sample: what in Berth's code asked for the time.
  const ours = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f && f.url.includes('/dist/') && !f.url.includes('node_modules/')) return `${f.functionName || '(anonymous)'} ${moduleOf(f.url)}:${f.lineNumber + 1}`;
    }
    return '(no project frame)';
  };
  const callers = new Map<string, Map<string, number>>();
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]);
    const us = p.timeDeltas[i] ?? 0;
    if (!node || us <= 0) continue;
    total += us;
    const f = node.callFrame;
    const m = moduleOf(f.url);
    const name = f.url ? `${f.functionName || '(anonymous)'} ${m}:${f.lineNumber + 1}` : f.functionName || '(anonymous)';
    fn.set(name, (fn.get(name) ?? 0) + us);
    let by = callers.get(name);
    if (!by) callers.set(name, (by = new Map()));
    const o = ours(node.id);
    by.set(o, (by.get(o) ?? 0) + us);
    mod.set(f.url ? m : f.functionName, (mod.get(f.url ? m : f.functionName) ?? 0) + us);
  }
  const rows = (m: Map<string, number>, withCallers: boolean): SelfTime[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => {
        const row: SelfTime = { name, ms: us / 1000, percent: (us / total) * 100 };
        const by = withCallers ? callers.get(name) : undefined;
        if (by)
          row.from = [...by]
            .sort((a, b) => b[1] - a[1])
            .slice(0, 3)
            .map(([n, v]) => ({ name: n, percent: (v / us) * 100 }));
        return row;
      });
  return { totalMs: total / 1000, functions: rows(fn, true), modules: rows(mod, false) };
}

export function summaryText(title: string, s: ReturnType<typeof summarize>): string {
  const line = (r: SelfTime) =>
    `  ${r.percent.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}` + (r.from?.length ? `\n${' '.repeat(20)}from ${r.from.map((f) => `${f.name} ${f.percent.toFixed(0)}%`).join('; ')}` : '');
  return [`${title}: ${(s.totalMs / 1000).toFixed(1)} s sampled`, ' by function (self):', ...s.functions.map(line), ' by module (self):', ...s.modules.map(line)].join('\n');
}
