import { mkdtempSync, rmSync } from 'node:fs';
import * as real from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as gateway from '../../edge-daemon/gateway-fs.js';

// The gateway bundle resolves node:fs/promises to edge-daemon/gateway-fs.ts (issue 11). Each case
// runs the same calls on real files through both, in directories of their own, and compares.
const root = mkdtempSync(join(tmpdir(), 'gateway-fs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Fsp = typeof gateway;
const both: [string, Fsp][] = [
  ['node:fs/promises', real as unknown as Fsp],
  ['gateway-fs', gateway],
];
let n = 0;
const dirOf = (): string => join(root, String(n++));

async function outcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await run() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { err: [e.code, e.syscall, e.message, e.path !== undefined] };
  }
}

/** Runs `story` with each implementation in a fresh directory; the dir's name is replaced by DIR. */
async function sameThrough(story: (fsp: Fsp, dir: string) => Promise<unknown>): Promise<unknown> {
  const seen: unknown[] = [];
  for (const [, fsp] of both) {
    const dir = dirOf();
    await real.mkdir(dir);
    seen.push(JSON.parse(JSON.stringify(await outcome(() => story(fsp, dir))).split(dir).join('DIR')));
  }
  expect(seen[1]).toEqual(seen[0]);
  return seen[0];
}

describe('gateway-fs: the daemon\'s node:fs/promises calls on node:fs callbacks (issue 11)', () => {
  it('writes, reads, renames, lists, stats and removes files as node:fs/promises does', async () => {
    const r = await sameThrough(async (fsp, dir) => {
      await fsp.mkdir(join(dir, 'a/b'), { recursive: true, mode: 0o700 });
      await fsp.writeFile(join(dir, 'a/key'), 'pem\n', { mode: 0o600, flag: 'wx' });
      await fsp.chmod(join(dir, 'a/key'), 0o640);
      await fsp.rename(join(dir, 'a/key'), join(dir, 'a/b/key'));
      const text = await fsp.readFile(join(dir, 'a/b/key'), 'utf8');
      const bytes = await fsp.readFile(join(dir, 'a/b/key'));
      const s = await fsp.stat(join(dir, 'a/b/key'));
      const listed = await fsp.readdir(join(dir, 'a/b'));
      const fs = await fsp.statfs(dir);
      await fsp.unlink(join(dir, 'a/b/key'));
      await fsp.rm(join(dir, 'a'), { recursive: true, force: true });
      await fsp.rm(join(dir, 'gone'), { force: true });
      return { text, bytes: [...bytes], size: s.size, mode: s.mode & 0o777, file: s.isFile(), listed, bsize: fs.bsize > 0, after: await fsp.readdir(dir) };
    });
    expect(r).toEqual({ ok: { text: 'pem\n', bytes: [...Buffer.from('pem\n')], size: 4, mode: 0o640, file: true, listed: ['key'], bsize: true, after: [] } });
  });

  it('fails with the same code, syscall and message', async () => {
    for (const story of [
      (fsp: Fsp, dir: string) => fsp.readFile(join(dir, 'missing'), 'utf8'),
      (fsp: Fsp, dir: string) => fsp.writeFile(join(dir, 'x'), 'a', { flag: 'wx' }).then(() => fsp.writeFile(join(dir, 'x'), 'b', { flag: 'wx' })),
      (fsp: Fsp, dir: string) => fsp.rename(join(dir, 'missing'), join(dir, 'y')),
      (fsp: Fsp, dir: string) => fsp.stat(join(dir, 'missing')),
      (fsp: Fsp, dir: string) => fsp.open(join(dir, 'missing'), 'r'),
      (fsp: Fsp, dir: string) => fsp.unlink(join(dir, 'missing')),
      (fsp: Fsp, dir: string) => fsp.readdir(join(dir, 'missing')),
      (fsp: Fsp, dir: string) => fsp.rm(join(dir, 'missing')),
    ]) {
      const r = (await sameThrough(story)) as { err?: unknown };
      expect(r.err).toBeDefined();
    }
  });

  it('opens handles that write, read at positions, stat, sync and close (twice) as FileHandle does', async () => {
    const r = await sameThrough(async (fsp, dir) => {
      const w = await fsp.open(join(dir, 'f'), 'wx', 0o600);
      const first = await w.write(Buffer.from('hello '));
      await w.writeFile('world, ' + 'x'.repeat(70_000));
      const at = await w.write(Buffer.from('HE'), 0, 2, 0);
      await w.sync();
      const size = (await w.stat()).size;
      await w.close();
      await w.close();
      const a = await fsp.open(join(dir, 'f'), 'a', 0o600);
      await a.write(Buffer.from('!'));
      await a.close();
      const h = await fsp.open(join(dir, 'f'), 'r');
      const buf = Buffer.alloc(16);
      const got = await h.read(buf, 2, 10, 3);
      const end = await h.read(Buffer.alloc(8), 0, 8, 70_013);
      await h.close();
      const d = await fsp.open(dir, 0);
      await d.sync();
      await d.close();
      return { first: first.bytesWritten, at: at.bytesWritten, size, read: got.bytesRead, text: buf.toString('latin1'), same: got.buffer === buf, end: end.bytesRead, mode: (await fsp.stat(join(dir, 'f'))).mode & 0o777 };
    });
    expect(r).toEqual({ ok: { first: 6, at: 2, size: 70_013, read: 10, text: '\0\0lo world, \0\0\0\0', same: true, end: 1, mode: 0o600 } });
  });
});
