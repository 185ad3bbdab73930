import type { Tx, Write } from './write-queue.js';

/** A batch written in a savepoint: an outcome per item, in order, and what to announce once the write commits. */
export interface BatchWritten<Out> {
  outcomes: Out[];
  /** Runs after the savepoint succeeded (never for one rolled back); typically registers afterCommit events. */
  announce(tx: Tx): void;
}

interface Pending<In, Out> {
  item: In;
  resolve(o: Out): void;
  reject(err: unknown): void;
}

/**
 * Requests written in batches (issue 17), the shape shared by reports and enrollments: whatever
 * arrives while a commit is in flight goes into the next write together, up to `maxBatch` items.
 * The batch is written in a savepoint; when the database refuses it (a device removed meanwhile, a
 * constraint), each item is written again in its own savepoint, so one bad item costs only itself.
 * Each submit resolves after the commit that holds its write, so an acknowledgement is durable.
 */
export class BatchedWrites<In, Out> {
  private pending: Pending<In, Out>[] = [];
  private scheduled = false;

  constructor(
    private readonly writer: { write: Write },
    private readonly writeBatch: (sp: Tx, items: In[]) => Promise<BatchWritten<Out>>,
    private readonly maxBatch: number,
  ) {}

  submit(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) this.schedule();
    });
  }

  private schedule(): void {
    this.scheduled = true;
    let batch: Pending<In, Out>[] = [];
    let began = false;
    // Taken when the write starts, not when it was queued: what arrived meanwhile joins.
    const take = () => {
      began = true;
      batch = this.pending.splice(0, this.maxBatch);
      this.scheduled = false;
      if (this.pending.length > 0) this.schedule();
    };
    this.writer.write(async (tx) => {
      take();
      return this.writeOrEachAlone(tx, batch.map((p) => p.item));
    }).then(
      (outcomes) =>
        batch.forEach((p, i) => {
          const o = outcomes[i];
          if (o instanceof Error) p.reject(o);
          else p.resolve(o);
        }),
      (err: unknown) => {
        // The transaction failed before this write began (SQLITE_BUSY at BEGIN, a closed client):
        // the batch it would have taken shares its fate, and the rest get a write of their own.
        // Without this, `scheduled` stayed set and every later submit waited for ever (at 100,000
        // devices three workers' reports hung after one busy BEGIN each, 2026-11-29 17:55).
        if (!began) take();
        batch.forEach((p) => p.reject(err));
      },
    );
  }

  private async writeOrEachAlone(tx: Tx, items: In[]): Promise<(Out | Error)[]> {
    if (items.length === 0) return [];
    try {
      const written = await tx.transaction((sp) => this.writeBatch(sp, items));
      written.announce(tx);
      return written.outcomes;
    } catch (batchError) {
      if (items.length === 1) return [asError(batchError)];
      const out: (Out | Error)[] = [];
      for (const item of items) {
        try {
          const written = await tx.transaction((sp) => this.writeBatch(sp, [item]));
          written.announce(tx);
          out.push(written.outcomes[0]);
        } catch (err) {
          out.push(asError(err));
        }
      }
      return out;
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
