import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** Drives `berth completion bash` in a real bash, with the compiled `berth` on the PATH as a shell has it. */
const ROOT = resolve(import.meta.dirname, '../..');

/** Writes `DIR/berth`, which runs dist/bin/berth.js; returns the PATH that finds it first. */
export async function berthOnPath(dir: string): Promise<string> {
  await writeFile(join(dir, 'berth'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/bin/berth.js')}" "$@"\n`);
  await chmod(join(dir, 'berth'), 0o755);
  return `${dir}:${process.env.PATH}`;
}

/** What bash offers after `berth WORD…` (the last word is the one being typed): COMPREPLY, a line each. */
export async function bashComplete(path: string, words: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string; offered: string[] }> {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `source <(berth completion bash) || exit 9\nCOMP_WORDS=(berth ${quoted}); COMP_CWORD=${words.length}\n_berth\nprintf '%s\\n' "\${COMPREPLY[@]}"`;
  // Not spawnSync: a control plane in this process must stay free to answer the completion's request.
  const child = spawn('bash', ['-c', script], { env: { PATH: path, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  return { code, stderr, offered: stdout.split('\n').filter(Boolean) };
}
