import type { Logger } from '../common/log.js';
import { serveBatches, writerGoneError, type BatchMessage } from './cluster-batches.js';
import { listenForWorkers, writerSocketPath } from './cluster-writer-socket.js';
import { openDatabase } from './db/open.js';
import { createWriteQueue, type WriteTurn } from './db/write-queue.js';
import { localEnrollWrites, type EnrollItem } from './device-api/enroll-writer.js';
import { localReportWrites, type ReportItem } from './device-api/report-writer.js';
import { sightingsWrite, type Sighting } from './devices/last-seen.js';
import { applyOutcomes, type OutcomeMoves } from './campaigns/membership.js';
import { DEFAULTS, type ControlPlaneOptions } from './index.js';

/**
 * The writer process of `--workers N` (cluster.ts, cluster-batches.ts): it serves no HTTP and holds
 * no lease; it writes the reports and enrollments every worker hands it, in group commits of its
 * own (db/batched-writes.ts), the sightings of their polls (devices/last-seen.ts) and the campaign
 * outcomes of reports (campaigns/membership.ts), and answers each worker after the commit. It still takes the
 * cluster's write turn like any worker: the workers write their other writes (campaign driving,
 * the lease, audit) themselves. Started after worker 1 has migrated the database.
 *
 * The workers' batches come on its socket (cluster-writer-socket.ts), or through the primary while a
 * worker is not connected to it; both are written alike and answered the way they came.
 */
export async function startBatchWriter(
  opts: Pick<ControlPlaneOptions, 'db' | 'dbAuthToken' | 'config'>,
  log: Logger,
  writeTurn: WriteTurn,
  link: { send(msg: BatchMessage): void; onMessage(fn: (msg: unknown) => void): void },
): Promise<{ close(): Promise<void> }> {
  const { client, db } = await openDatabase(opts.db, { authToken: opts.dbAuthToken });
  const { write } = createWriteQueue(db, log, writeTurn);
  const config = { reportHistoryLimit: opts.config?.reportHistoryLimit ?? DEFAULTS.reportHistoryLimit, challengeTtlMs: opts.config?.challengeTtlMs ?? DEFAULTS.challengeTtlMs };
  const now = () => new Date();
  const reports = localReportWrites({ write, config });
  const enrollments = localEnrollWrites({ write, config, now });
  const sightings = sightingsWrite(write);
  let closing = false;
  // Once closing, what still arrives is refused as from a writer gone (503): nothing is taken that the close would not wait for.
  const open =
    <I>(writeItem: (item: I) => Promise<unknown>) =>
    (item: unknown) =>
      closing ? Promise.reject(writerGoneError()) : writeItem(item as I);
  const served = serveBatches(
    {
      report: open<ReportItem>(reports),
      enroll: open<EnrollItem>(enrollments),
      sightings: open<Sighting[]>(sightings),
      outcomes: open<OutcomeMoves>((moves) => write((tx) => applyOutcomes(tx, moves))),
    },
    (msg) => link.send(msg),
    (fn) => link.onMessage(fn),
  );
  // The cluster's primary is this process's parent: the workers find the socket by its pid.
  const path = writerSocketPath(process.ppid);
  const socket = path ? await listenForWorkers(path, (msg, reply) => served.receive(msg, reply)) : null;
  log.info({ socket: path ?? undefined }, path ? 'writer ready' : 'writer ready (no socket of its own: batches come through the primary)');
  return {
    async close() {
      closing = true;
      // Every batch taken is committed and answered before the database closes.
      await served.idle();
      await socket?.close();
      await write(async () => undefined);
      client.close();
      log.info('writer stopped');
    },
  };
}
