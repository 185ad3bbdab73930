import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchServer, RemoteBatches, type BatchMessage } from '../../control-plane/cluster-batches.js';
import { listenForWorkers, writerSocketPath } from '../../control-plane/cluster-writer-socket.js';
import { WRITER_UNAVAILABLE } from '../../control-plane/db/busy.js';

/**
 * The workers' batches on the writer's own Unix socket (cluster-writer-socket.ts), real sockets in a
 * directory of the test's: answered after the write as through the primary, refused (503's code)
 * when the writer goes, through the primary meanwhile, and straight again once it listens anew.
 */

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-wsock-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!ok()) throw new Error(`${what}: not within 5 s`);
}

/** The primary's end of a worker's IPC, in memory: what the worker sent through it. */
function primaryLink() {
  const sent: BatchMessage[] = [];
  const listeners: ((msg: unknown) => void)[] = [];
  return { sent, send: (msg: BatchMessage) => void sent.push(msg), onMessage: (fn: (msg: unknown) => void) => void listeners.push(fn), deliver: (msg: unknown) => listeners.forEach((fn) => fn(msg)) };
}

describe('writerSocketPath', () => {
  it('makes a directory only this user can enter, and refuses one open to others or a path too long for a socket', () => {
    const base = scratch();
    const dir = join(base, 'mine');
    expect(writerSocketPath(42, dir)).toBe(join(dir, 'writer-42.sock'));
    expect(writerSocketPath(42, dir)).toBe(join(dir, 'writer-42.sock'));
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    expect(writerSocketPath(42, open)).toBeNull();
    expect(writerSocketPath(42, join(base, 'x'.repeat(120)))).toBeNull();
  });
});

describe("a worker's batches on the writer's socket", () => {
  it('goes straight to the writer and is answered after the write; refused when the writer goes, through the primary meanwhile, straight again once it listens', async () => {
    const path = writerSocketPath(process.pid, join(scratch(), 's')) as string;
    const release: (() => void)[] = [];
    const server = batchServer({
      report: (item) => new Promise((resolve) => release.push(() => resolve({ wrote: item }))),
      enroll: () => Promise.resolve('enrolled'),
      sightings: () => Promise.resolve(),
      outcomes: () => Promise.resolve([]),
    });
    let writer = await listenForWorkers(path, (msg, reply) => server.receive(msg, reply));
    const primary = primaryLink();
    const remote = new RemoteBatches(primary.send, primary.onMessage, path);
    try {
      await until('connected to the writer', () => remote.direct);
      const a = remote.submit('report', 1);
      await until('the write started', () => release.length === 1);
      expect(remote.pending).toBe(1);
      release[0]();
      await expect(a).resolves.toEqual({ wrote: 1 });
      expect(primary.sent).toEqual([]);

      // The writer goes with a batch unanswered: refused as from a writer gone (503), not left hanging.
      const lost = remote.submit('report', 2);
      await until('the second write started', () => release.length === 2);
      const refused = expect(lost).rejects.toMatchObject({ code: WRITER_UNAVAILABLE });
      await writer.close();
      await refused;
      await until('the socket seen closed', () => !remote.direct);

      // Meanwhile through the primary, which holds it until a writer is ready.
      const held = remote.submit('enroll', 3);
      await until('sent through the primary', () => primary.sent.length === 1);
      const m = primary.sent[0] as Extract<BatchMessage, { kind: 'write' }>;
      expect([m.what, m.items]).toEqual(['enroll', [3]]);
      primary.deliver({ berth: 'batch', kind: 'written', id: m.id, to: 1, outcomes: [{ ok: true, value: 'enrolled' }] });
      await expect(held).resolves.toBe('enrolled');

      writer = await listenForWorkers(path, (msg, reply) => server.receive(msg, reply));
      await until('connected again', () => remote.direct);
      await expect(remote.submit('enroll', 4)).resolves.toBe('enrolled');
      expect(primary.sent).toHaveLength(1);
    } finally {
      remote.close();
      await writer.close();
    }
  });
});
