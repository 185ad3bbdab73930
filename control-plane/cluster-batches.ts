import { carriedCode, WRITER_UNAVAILABLE } from './db/busy.js';
import { WriterSocket } from './cluster-writer-socket.js';

/**
 * The batched writes of `--workers N` (reports and enrollments, db/batched-writes.ts) written by ONE
 * process, the writer (cluster-writer.ts), for every worker (issue 17). With each of ten workers
 * writing its own batches, the last wave of a 100,000-device campaign crawled at ~50 devices/s: ten
 * processes took the cluster's write turn one small group at a time, and meeting SQLite's lock
 * refused reports busy at BEGIN. Here a worker hands its reports to the writer on the writer's
 * socket (cluster-writer-socket.ts), or through the primary while that socket is not connected (one
 * message per event-loop turn, however many reports), the writer puts what arrives
 * from all workers into the same group commits, and answers each message after the commit that
 * holds it: the worker acknowledges a report (202) only then, so an acknowledged report is durable.
 *
 * Nothing here loads the control plane: the primary imports it to route the messages.
 */

/** What the writer writes for the workers: reports, enrollments, the sightings of their polls (devices/last-seen.ts), and the campaign outcomes of reports (campaigns/membership.ts). */
export type BatchWhat = 'report' | 'enroll' | 'sightings' | 'outcomes';

/** One item's outcome over IPC: the value, or the error's message and code (SQLITE_BUSY, ...). */
export type ItemOutcome = { ok: true; value: unknown } | { ok: false; message: string; code?: string };

export type BatchMessage =
  /** worker → primary → writer (the primary stamps `from`). */
  | { berth: 'batch'; kind: 'write'; id: number; what: BatchWhat; items: unknown[]; from?: number }
  /** writer → primary → the worker `to`: an outcome per item, in order, after the commit. */
  | { berth: 'batch'; kind: 'written'; id: number; to: number; outcomes: ItemOutcome[] }
  /** primary → workers: the writer died; what it had not answered may or may not be committed. */
  | { berth: 'batch'; kind: 'writer-gone' };

export function isBatchMessage(msg: unknown): msg is BatchMessage {
  const m = msg as { berth?: unknown; kind?: unknown } | null;
  return typeof m === 'object' && m !== null && m.berth === 'batch' && (m.kind === 'write' || m.kind === 'written' || m.kind === 'writer-gone');
}

export function writerGoneError(): Error {
  return Object.assign(new Error('the writer process of the control plane is restarting; try again'), { code: WRITER_UNAVAILABLE });
}

/** The primary's answer for a batch no writer can take (none started yet, or it died): every item refused. */
export function refusedBatch(msg: Extract<BatchMessage, { kind: 'write' }>, from: number): Extract<BatchMessage, { kind: 'written' }> {
  const { message } = writerGoneError();
  return { berth: 'batch', kind: 'written', id: msg.id, to: from, outcomes: msg.items.map(() => ({ ok: false, message, code: WRITER_UNAVAILABLE })) };
}

interface Waiting {
  resolve(v: unknown): void;
  reject(err: unknown): void;
}

/**
 * A worker's side: `submit` resolves once the writer has committed the item (or refused it). Items
 * submitted in one event-loop turn go in one message.
 */
export class RemoteBatches {
  private last = 0;
  private readonly queued = new Map<BatchWhat, { item: unknown; w: Waiting }[]>();
  private readonly inFlight = new Map<number, Waiting[]>();
  private scheduled = false;
  private readonly socket: WriterSocket<Extract<BatchMessage, { kind: 'write' }>> | null;

  constructor(
    private readonly send: (msg: BatchMessage) => void,
    onMessage: (fn: (msg: unknown) => void) => void,
    /** The writer's socket (cluster-writer-socket.ts writerSocketPath); without one, every batch goes through the primary. */
    writerPath?: string | null,
  ) {
    onMessage((msg) => {
      if (!isBatchMessage(msg)) return;
      if (msg.kind === 'written') this.written(msg.id, msg.outcomes);
      else if (msg.kind === 'writer-gone') this.gone();
    });
    this.socket = writerPath
      ? new WriterSocket(
          writerPath,
          (msg) => {
            if (!isBatchMessage(msg) || msg.kind !== 'written') return;
            this.socket?.answered(msg.id);
            this.written(msg.id, msg.outcomes);
          },
          (ids) => this.refuse(ids),
        )
      : null;
  }

  /** Whether batches go to the writer's socket now (else through the primary). */
  get direct(): boolean {
    return this.socket?.connected ?? false;
  }

  /** Stops trying the writer's socket (the worker stops). */
  close(): void {
    this.socket?.close();
  }

  submit<O>(what: BatchWhat, item: unknown): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      let list = this.queued.get(what);
      if (!list) this.queued.set(what, (list = []));
      list.push({ item, w: { resolve: resolve as (v: unknown) => void, reject } });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  /** Items handed over and not answered yet. */
  get pending(): number {
    let n = 0;
    for (const list of this.inFlight.values()) n += list.length;
    return n;
  }

  private flush(): void {
    this.scheduled = false;
    for (const [what, list] of this.queued) {
      this.queued.delete(what);
      const id = ++this.last;
      this.inFlight.set(
        id,
        list.map((p) => p.w),
      );
      const msg: BatchMessage = { berth: 'batch', kind: 'write', id, what, items: list.map((p) => p.item) };
      if (!this.socket?.send(msg)) this.send(msg);
    }
  }

  private written(id: number, outcomes: ItemOutcome[]): void {
    const list = this.inFlight.get(id);
    if (!list) return;
    this.inFlight.delete(id);
    list.forEach((w, i) => {
      const o = outcomes[i];
      if (o?.ok) w.resolve(o.value);
      else w.reject(Object.assign(new Error(o?.message ?? 'the writer gave no outcome for this item'), { code: o?.code }));
    });
  }

  /** The writer died: nothing in flight will be answered (what it committed is found again on the device's retry). */
  private gone(): void {
    this.refuse([...this.inFlight.keys()]);
  }

  /** These batches will not be answered: each of their items refused as from a writer gone (503). */
  private refuse(ids: number[]): void {
    for (const id of ids) {
      const list = this.inFlight.get(id);
      this.inFlight.delete(id);
      for (const w of list ?? []) w.reject(writerGoneError());
    }
  }
}

type Writers = Record<BatchWhat, (item: unknown) => Promise<unknown>>;

/** The writer's side: each item to its local batched writer; the message answered once all of its items are. */
export function serveBatches(writers: Writers, send: (msg: BatchMessage) => void, onMessage: (fn: (msg: unknown) => void) => void): BatchServer {
  const server = batchServer(writers);
  // Through the primary: answered to the worker the primary stamped it from.
  onMessage((msg) => {
    if (isBatchMessage(msg) && msg.kind === 'write' && typeof msg.from === 'number') server.receive(msg, send);
  });
  return server;
}

export interface BatchServer {
  /** A worker's message: if it is a batch, its items written and the answer to `reply` after their commit. */
  receive(msg: unknown, reply: (msg: BatchMessage) => void): void;
  /** Resolves once every batch taken is answered. */
  idle(): Promise<void>;
}

/** The writing of batches, whichever way they come (the primary, or the writer's socket). */
export function batchServer(writers: Writers): BatchServer {
  const running = new Set<Promise<void>>();
  return {
    receive(msg, reply) {
      if (!isBatchMessage(msg) || msg.kind !== 'write' || !Array.isArray(msg.items)) return;
      const write = writers[msg.what];
      const to = msg.from ?? 0;
      const done = Promise.all(
        msg.items.map((item) =>
          (write ? write(item) : Promise.reject(new Error(`no batched write named ${String(msg.what)}`))).then(
            (value): ItemOutcome => ({ ok: true, value }),
            (err: unknown): ItemOutcome => ({ ok: false, message: (err as Error)?.message ?? String(err), code: carriedCode(err) }),
          ),
        ),
      ).then((outcomes) => reply({ berth: 'batch', kind: 'written', id: msg.id, to, outcomes }));
      running.add(done);
      void done.finally(() => running.delete(done));
    },
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
  };
}

/**
 * The primary's side: a worker's batch to the writer, held while the writer is not ready (starting,
 * or started again after it died) and sent once it is; the writer's answer to its worker.
 */
export class BatchRelay {
  private held: Extract<BatchMessage, { kind: 'write' }>[] = [];

  constructor(
    readonly writerSlot: number,
    /** Sends to a slot; false when that process is not there to take it. */
    private readonly sendTo: (slot: number, msg: BatchMessage) => boolean,
    private readonly writerReady: () => boolean,
  ) {}

  receive(from: number, msg: BatchMessage, stopping: boolean): void {
    if (msg.kind === 'write') {
      const stamped = { ...msg, from };
      if (this.writerReady() && this.sendTo(this.writerSlot, stamped)) return;
      if (stopping) this.sendTo(from, refusedBatch(msg, from));
      else this.held.push(stamped);
    } else if (msg.kind === 'written' && from === this.writerSlot) {
      this.sendTo(msg.to, msg);
    }
  }

  /** The writer is ready: what was held goes to it. */
  ready(): void {
    for (const m of this.held.splice(0)) this.sendTo(this.writerSlot, m);
  }

  /** The writer died (or the cluster stops): what is held is dropped, the workers refuse what is in flight (RemoteBatches). */
  gone(): BatchMessage {
    this.held = [];
    return { berth: 'batch', kind: 'writer-gone' };
  }
}
