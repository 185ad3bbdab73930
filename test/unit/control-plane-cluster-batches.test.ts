import { describe, expect, it } from 'vitest';
import { BatchRelay, RemoteBatches, serveBatches, type BatchMessage } from '../../control-plane/cluster-batches.js';
import { WRITER_UNAVAILABLE } from '../../control-plane/db/busy.js';

/** A pair of IPC ends in memory: what one sends the other receives, on a later turn as over a channel. */
function channel() {
  const sent: BatchMessage[] = [];
  const listeners: ((msg: unknown) => void)[] = [];
  return {
    sent,
    send: (msg: BatchMessage) => void sent.push(msg),
    onMessage: (fn: (msg: unknown) => void) => void listeners.push(fn),
    deliver: (msg: unknown) => listeners.forEach((fn) => fn(msg)),
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('RemoteBatches (a worker handing its reports to the writer)', () => {
  it('sends what is submitted in one turn as one message per kind, and answers each item with its own outcome', async () => {
    const link = channel();
    const remote = new RemoteBatches(link.send, link.onMessage);
    const a = remote.submit('report', { n: 1 });
    const b = remote.submit('report', { n: 2 });
    const c = remote.submit('enroll', { n: 3 });
    await turn();
    expect(link.sent.map((m) => m.kind === 'write' && [m.what, m.items])).toEqual([
      ['report', [{ n: 1 }, { n: 2 }]],
      ['enroll', [{ n: 3 }]],
    ]);
    expect(remote.pending).toBe(3);
    const [reports, enrolls] = link.sent as Extract<BatchMessage, { kind: 'write' }>[];
    link.deliver({ berth: 'batch', kind: 'written', id: reports.id, to: 1, outcomes: [{ ok: true, value: { accepted: true } }, { ok: false, message: 'database is locked', code: 'SQLITE_BUSY' }] });
    await expect(a).resolves.toEqual({ accepted: true });
    await expect(b).rejects.toMatchObject({ message: 'database is locked', code: 'SQLITE_BUSY' });
    expect(remote.pending).toBe(1);
    link.deliver({ berth: 'batch', kind: 'written', id: enrolls.id, to: 1, outcomes: [{ ok: true, value: 'done' }] });
    await expect(c).resolves.toBe('done');
  });

  it('refuses what is in flight when the writer dies, and sends later items afresh', async () => {
    const link = channel();
    const remote = new RemoteBatches(link.send, link.onMessage);
    const lost = remote.submit('report', { n: 1 });
    await turn();
    link.deliver({ berth: 'batch', kind: 'writer-gone' });
    await expect(lost).rejects.toMatchObject({ code: WRITER_UNAVAILABLE });
    expect(remote.pending).toBe(0);
    const next = remote.submit('report', { n: 2 });
    await turn();
    const m = link.sent[1] as Extract<BatchMessage, { kind: 'write' }>;
    expect(m.items).toEqual([{ n: 2 }]);
    link.deliver({ berth: 'batch', kind: 'written', id: m.id, to: 1, outcomes: [{ ok: true, value: 2 }] });
    await expect(next).resolves.toBe(2);
  });
});

describe('serveBatches (the writer)', () => {
  it('answers a message once every item of it is written, to the worker it came from', async () => {
    const link = channel();
    const release: (() => void)[] = [];
    const served = serveBatches(
      {
        report: (item) => new Promise((resolve) => release.push(() => resolve({ wrote: item }))),
        enroll: () => Promise.reject(Object.assign(new Error('refused'), { code: 'SQLITE_CONSTRAINT' })),
        sightings: () => Promise.resolve(),
        outcomes: () => Promise.resolve([]),
      },
      link.send,
      link.onMessage,
    );
    link.deliver({ berth: 'batch', kind: 'write', id: 7, what: 'report', items: [1, 2], from: 3 });
    link.deliver({ berth: 'batch', kind: 'write', id: 8, what: 'enroll', items: [1], from: 4 });
    await turn();
    expect(link.sent).toEqual([{ berth: 'batch', kind: 'written', id: 8, to: 4, outcomes: [{ ok: false, message: 'refused', code: 'SQLITE_CONSTRAINT' }] }]);
    release[0]();
    await turn();
    expect(link.sent).toHaveLength(1);
    release[1]();
    await served.idle();
    expect(link.sent[1]).toEqual({ berth: 'batch', kind: 'written', id: 7, to: 3, outcomes: [{ ok: true, value: { wrote: 1 } }, { ok: true, value: { wrote: 2 } }] });
  });

  it("sends the code of a wrapped error's cause, so a busy database still reads busy on the worker's side", async () => {
    const link = channel();
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const wrapped = new Error('Failed query: insert into reported ...', { cause: busy });
    const served = serveBatches(
      { report: () => Promise.reject(wrapped), enroll: () => Promise.reject(new Error('no code anywhere')), sightings: () => Promise.resolve(), outcomes: () => Promise.resolve([]) },
      link.send,
      link.onMessage,
    );
    link.deliver({ berth: 'batch', kind: 'write', id: 1, what: 'report', items: [1], from: 2 });
    link.deliver({ berth: 'batch', kind: 'write', id: 2, what: 'enroll', items: [1], from: 2 });
    await served.idle();
    expect(link.sent.map((m) => m.kind === 'written' && m.outcomes)).toEqual([
      [{ ok: false, message: 'Failed query: insert into reported ...', code: 'SQLITE_BUSY' }],
      [{ ok: false, message: 'no code anywhere', code: undefined }],
    ]);
  });
});

describe('BatchRelay (the primary between workers and the writer)', () => {
  it('holds batches while the writer is not ready, sends them once it is, and passes answers to their worker', () => {
    const out: [number, BatchMessage][] = [];
    let ready = false;
    const relay = new BatchRelay(3, (slot, msg) => (out.push([slot, msg]), true), () => ready);
    relay.receive(1, { berth: 'batch', kind: 'write', id: 1, what: 'report', items: ['a'] }, false);
    expect(out).toEqual([]);
    ready = true;
    relay.ready();
    relay.receive(2, { berth: 'batch', kind: 'write', id: 1, what: 'report', items: ['b'] }, false);
    expect(out).toEqual([
      [3, { berth: 'batch', kind: 'write', id: 1, what: 'report', items: ['a'], from: 1 }],
      [3, { berth: 'batch', kind: 'write', id: 1, what: 'report', items: ['b'], from: 2 }],
    ]);
    relay.receive(3, { berth: 'batch', kind: 'written', id: 1, to: 2, outcomes: [] }, false);
    // Only the writer answers batches.
    relay.receive(1, { berth: 'batch', kind: 'written', id: 1, to: 2, outcomes: [] }, false);
    expect(out.slice(2)).toEqual([[2, { berth: 'batch', kind: 'written', id: 1, to: 2, outcomes: [] }]]);
  });

  it('drops what it held when the writer dies, and refuses batches at once while the cluster stops', () => {
    const out: [number, BatchMessage][] = [];
    const relay = new BatchRelay(3, (slot, msg) => (out.push([slot, msg]), true), () => false);
    relay.receive(1, { berth: 'batch', kind: 'write', id: 1, what: 'report', items: ['a'] }, false);
    expect(relay.gone()).toEqual({ berth: 'batch', kind: 'writer-gone' });
    relay.ready();
    expect(out).toEqual([]);
    relay.receive(1, { berth: 'batch', kind: 'write', id: 2, what: 'report', items: ['a', 'b'] }, true);
    expect(out).toHaveLength(1);
    expect(out[0][0]).toBe(1);
    expect(out[0][1]).toMatchObject({ kind: 'written', id: 2, to: 1, outcomes: [{ ok: false, code: WRITER_UNAVAILABLE }, { ok: false, code: WRITER_UNAVAILABLE }] });
  });
});
