import cluster, { type Worker } from 'node:cluster';
import { createLogger, type Logger } from '../common/log.js';
import { processIo, type ServiceIo, type Stoppable } from '../common/service.js';
import { isClusterNotice, relayNotices } from './cluster-relay.js';
import { forksWriter } from './cluster-size.js';
import type { WriteTurn } from './db/write-queue.js';
import { isTurnMessage, workerWriteTurn } from './write-turns.js';
import { TurnDesk } from './cluster-turns.js';
import { EnrollBudgets, isBudgetMessage, workerEnrollBudget, type Outgoing } from './enroll-budgets.js';
import { BatchRelay, isBatchMessage, RemoteBatches, type BatchMessage } from './cluster-batches.js';
import { writerSocketPath } from './cluster-writer-socket.js';
import type { AddressBudget } from './device-api/enroll-guard.js';
import type { ControlPlaneContext } from './context.js';
import { prioritizeCluster, priorityStepOf, renice } from './cluster-nice.js';

/**
 * `berth control-plane --workers N`: N processes serve one port through node:cluster, each a full
 * control plane on the shared database. node:cluster because Node 20 cannot set SO_REUSEPORT
 * (`reusePort` came in 22.12); the primary also gives a place to start the workers in order,
 * restart a worker that dies and stop them all together.
 *
 * - Every worker accepts on the shared listening socket itself (SCHED_NONE), not through the
 *   primary's round-robin: that primary accepts each connection and hands it to a worker over IPC,
 *   one in flight per worker, so with the workers busy it passed on ~200 connections a second and
 *   held 11,468 accepted sockets at 20,000 devices; requests waiting there past the devices'
 *   timeouts came back as a reconnect storm (control-plane/SCALING.md, fleet-sim). The kernel's
 *   spread is less even (an idle worker accepts more), which is also where the free CPU is; the
 *   per-address enrollment budgets are therefore kept by the primary for all (enroll-budgets.ts).
 * - The primary serves nothing and loads none of the control plane (service.ts): it holds the
 *   listening socket, which the workers share.
 * - Worker 1 starts alone: it migrates the database, makes the key-vault secret, seals old keys,
 *   makes the first signing key and admin token while no other process exists to race it; the
 *   other workers start once it listens and find all of it done (each step is a no-op then).
 * - The work only one process may do (campaign driving, webhooks, presence) goes to the holder of
 *   the singletons lease (lease.ts), as among independent control planes; a killed worker's lease
 *   is taken over at once (its pid is gone on this host).
 * - Memory that another worker's change makes stale (signing keys, revoked devices' long polls) is
 *   updated through notices the primary passes on (cluster-relay.ts).
 * - From WRITER_FROM_WORKERS workers up, reports and enrollments are written by one more process,
 *   the writer (cluster-writer.ts), for all workers: each worker hands them over through the
 *   writer's socket (or the primary while not connected to it) and answers after the writer's
 *   commit (cluster-batches.ts, cluster-writer-socket.ts). Ten processes each
 *   committing its own small groups, and meeting SQLite's lock, made the last wave of a
 *   100,000-device campaign crawl (SCALING.md). Below that each worker writes its own.
 * - A worker that dies is started again, at once the first time and backing off while it keeps
 *   dying young; one that cannot live 10 s after 8 tries stops the whole service (exit 1).
 * - SIGTERM/SIGINT to the primary stop every worker gracefully (long polls answered, writes
 *   committed), then the primary. Workers ignore those signals themselves: Ctrl-C and systemd
 *   signal the whole process group, and the primary orders the stop. If the primary is killed
 *   (kill -9), its workers exit at once (Node's cluster closes a worker whose primary is gone).
 */

const SLOT_ENV = 'BERTH_WORKER_SLOT';
/** Set to 'writer' for the writer process (cluster-writer.ts). */
const ROLE_ENV = 'BERTH_WORKER_ROLE';
/** A worker that dies younger than this counts as a crash loop. */
const YOUNG_MS = 10_000;
const MAX_YOUNG_DEATHS = 8;
/** How long the primary waits for its workers to stop before killing them. */
const STOP_GRACE_MS = 20_000;

/** What cluster.ts needs of index.ts (which imports nothing of this file, and the primary never loads). */
interface ClusterOptions {
  tls?: unknown;
}
type Start<O> = (opts: O & { log: Logger; worker: { id: number; of: number }; writeTurn: WriteTurn; enrollBudget: AddressBudget; batches?: RemoteBatches }) => Promise<{ url: string; ctx: ControlPlaneContext; close(): Promise<void> }>;
type StartWriter<O> = (opts: O, log: Logger, writeTurn: WriteTurn, link: { send(msg: BatchMessage): void; onMessage(fn: (msg: unknown) => void): void }) => Promise<Stoppable>;

type ToPrimary = { berth: 'listening'; url: string } | { berth: 'ready' } | { berth: 'failed'; message: string };

/** This process is the writer forked by startPrimary (cluster-writer.ts). */
export function isClusterWriter(): boolean {
  return isClusterWorker() && process.env[ROLE_ENV] === 'writer';
}

/** This process is a worker forked by startPrimary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[SLOT_ENV] !== undefined;
}

function slotOf(): number {
  return Number(process.env[SLOT_ENV]);
}

/** Log traffic between workers (device-logs/relay.ts), passed on by the primary unread. */
function isPeerMessage(msg: unknown): boolean {
  return typeof msg === 'object' && msg !== null && (msg as { berth?: unknown }).berth === 'logs';
}

/**
 * To the primary. A send that fails (the primary gone: Node closes this worker next) is dropped
 * here: without the callback it is thrown as an uncaught `write EPIPE` and the worker dies with it
 * (worker 3 of the 12:52 run at 100,000 devices, from a write turn's ask).
 */
function toPrimary(msg: unknown): void {
  if (process.connected) process.send?.(msg, () => undefined);
}

function send(msg: ToPrimary): void {
  toPrimary(msg);
}

/**
 * How a worker runs common/service.ts's runService: "stop" comes from the primary, not from a
 * signal, and its log lines carry `worker: N` (the primary's carry `worker: 0`).
 */
export function workerIo(): ServiceIo {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => undefined);
  return {
    ...processIo,
    log: createLogger('control-plane').child({ worker: slotOf(), pid: process.pid }),
    onSignal(handler) {
      const onMessage = (msg: unknown) => {
        if ((msg as { berth?: string } | null)?.berth === 'stop') handler('SIGTERM');
      };
      process.on('message', onMessage);
      return () => void process.off('message', onMessage);
    },
  };
}

/** One worker: a full control plane (whether it drives campaigns is the lease's choice, lease.ts). */
export async function startWorker<O extends ClusterOptions>(options: O, workers: number, log: Logger, start: Start<O>): Promise<Stoppable> {
  const slot = slotOf();
  let cp: Awaited<ReturnType<Start<O>>>;
  let batches: RemoteBatches | undefined;
  try {
    const writeTurn = workerWriteTurn(toPrimary, (fn) => process.on('message', fn));
    const enrollBudget = workerEnrollBudget(toPrimary, (fn) => process.on('message', fn));
    // The writer's socket is named by the primary's pid, this process's parent (cluster-writer-socket.ts).
    batches = forksWriter(workers) ? new RemoteBatches(toPrimary, (fn) => process.on('message', fn), writerSocketPath(process.ppid)) : undefined;
    cp = await start({ ...options, log, worker: { id: slot, of: workers }, writeTurn, enrollBudget, batches });
  } catch (err) {
    send({ berth: 'failed', message: (err as Error).message ?? String(err) });
    throw err;
  }
  const onMessage = (fn: (msg: unknown) => void) => {
    process.on('message', fn);
    return () => void process.off('message', fn);
  };
  const stopRelay = relayNotices(cp.ctx, { send: toPrimary, onMessage });
  send({ berth: 'listening', url: cp.url });
  return {
    async close() {
      stopRelay();
      await cp.close();
      // After the control plane: its last writes were answered on the socket; then no more reconnecting.
      batches?.close();
    },
  };
}

/** The writer process: the reports and enrollments of every worker (cluster-writer.ts). */
export async function startWriterWorker<O>(options: O, log: Logger, start: StartWriter<O>): Promise<Stoppable> {
  let writer: Stoppable;
  try {
    const writeTurn = workerWriteTurn(toPrimary, (fn) => process.on('message', fn));
    writer = await start(options, log, writeTurn, { send: toPrimary, onMessage: (fn) => process.on('message', fn) });
  } catch (err) {
    send({ berth: 'failed', message: (err as Error).message ?? String(err) });
    throw err;
  }
  send({ berth: 'ready' });
  return writer;
}

interface Slot {
  worker: Worker;
  startedAt: number;
  youngDeaths: number;
  ready: boolean;
}

/** The primary: forks worker 1, then the others once it listens; keeps them running; hands out write turns. */
export async function startPrimary<O extends ClusterOptions>(options: O, workers: number, log: Logger, exit: (code: number) => void = (code) => process.exit(code)): Promise<Stoppable> {
  // Workers serve before the last is up, and runService listens for signals only once start
  // returns: a stop asked for meanwhile (the first worker answers already) is kept and done right after.
  let early: NodeJS.Signals | null = null;
  const onEarly = (signal: NodeJS.Signals) => void (early ??= signal);
  process.on('SIGINT', onEarly);
  process.on('SIGTERM', onEarly);
  // Before the first fork, which freezes the policy (and over NODE_CLUSTER_SCHED_POLICY): see the top of this file.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const entries = new Map<number, Slot>();
  const writerSlot = workers + 1;
  const budgets = new EnrollBudgets();
  const restarts = new Set<NodeJS.Timeout>();
  let stopping = false;
  let url = '';
  let onStartFailure: ((err: Error) => void) | null = null;
  let onReady: (() => void) | null = null;
  const sendTo = (slot: number, msg: unknown) => Boolean(entries.get(slot)?.worker.isConnected() && entries.get(slot)?.worker.send(msg as BatchMessage));
  // Before the first fork, which inherits it (cluster-nice.ts); only with a writer, the process the
  // priority is for (BERTH_CLUSTER_PRIORITY_STEP, cluster-nice.ts).
  const workerNice = prioritizeCluster(forksWriter(workers) ? priorityStepOf() : 0);
  const desk = new TurnDesk(writerSlot, sendTo, log);
  const relay = new BatchRelay(writerSlot, sendTo, () => entries.get(writerSlot)?.ready === true);

  function fork(slot: number, youngDeaths: number): void {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot), ...(slot === writerSlot ? { [ROLE_ENV]: 'writer' } : {}) });
    const entry: Slot = { worker, startedAt: Date.now(), youngDeaths, ready: false };
    entries.set(slot, entry);
    let failure = '';
    worker.on('message', (msg: unknown) => {
      if (isTurnMessage(msg)) {
        desk.receive(slot, msg);
        return;
      }
      if (isBatchMessage(msg)) {
        relay.receive(slot, msg, stopping);
        return;
      }
      if (isBudgetMessage(msg)) {
        sendBudgets(budgets.answer(slot, msg));
        return;
      }
      if (isClusterNotice(msg) || isPeerMessage(msg)) {
        pass(slot, msg as { berth?: unknown; to?: unknown });
        return;
      }
      const m = msg as ToPrimary;
      if (m?.berth === 'ready') {
        entry.ready = true;
        relay.ready();
        if (onReady) onReady();
        else log.info({ worker: slot, pid: worker.process.pid }, 'writer replaced and ready');
      } else if (m?.berth === 'listening') {
        entry.ready = true;
        // Listening: its threads are there (cluster-nice.ts); what it starts later inherits its main thread's.
        if (workerNice !== null) renice(worker.process.pid as number, workerNice);
        url = m.url;
        if (onReady) onReady();
        else log.info({ worker: slot, pid: worker.process.pid }, `worker ${slot} replaced and listening`);
      } else if (m?.berth === 'failed') failure = m.message;
    });
    worker.on('exit', (code, signal) => {
      if (entries.get(slot) !== entry) return;
      desk.gone(slot);
      sendBudgets(budgets.gone(slot));
      if (stopping) return;
      if (slot === writerSlot) {
        // What it took and did not answer may or may not be committed: refused now, found again on the device's retry.
        pass(slot, relay.gone());
      }
      // The log requests its operators opened end on the other workers.
      pass(slot, { berth: 'logs', kind: 'gone' });
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (!entry.ready && onStartFailure) {
        onStartFailure(new Error(`worker ${slot} ${how} before listening${failure ? `: ${failure}` : ''}`));
        return;
      }
      const young = Date.now() - entry.startedAt < YOUNG_MS;
      const deaths = young ? entry.youngDeaths + 1 : 0;
      if (deaths >= MAX_YOUNG_DEATHS) {
        log.fatal({ worker: slot, code, signal, failure }, `worker ${slot} ${how} ${deaths} times within ${YOUNG_MS / 1000} s of starting; stopping the control plane`);
        void stopAll().finally(() => exit(1));
        return;
      }
      // At once after a long life; backing off (0.5 s, 1 s, 2 s… 30 s) while it keeps dying young.
      const delay = deaths === 0 ? 0 : Math.min(30_000, 500 * 2 ** (deaths - 1));
      log.warn({ worker: slot, pid: worker.process.pid, code, signal, failure: failure || undefined, restartInMs: delay }, `worker ${slot} ${how}; starting another`);
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) fork(slot, deaths);
      }, delay);
      restarts.add(timer);
    });
  }

  /** Budget answers, credit and recalls (enroll-budgets.ts), each to its worker. */
  function sendBudgets(out: Outgoing[]): void {
    for (const { slot, msg } of out) {
      const w = entries.get(slot)?.worker;
      if (w?.isConnected()) w.send(msg);
    }
  }

  /** Passes a worker's message on, stamped with its slot: to `to` alone, else to every other worker. */
  function pass(from: number, msg: { berth?: unknown; kind?: unknown; to?: unknown }): void {
    const stamped = { ...msg, from };
    for (const [slot, s] of entries) {
      if (slot === from || !s.worker.isConnected() || (typeof msg.to === 'number' && msg.to !== slot)) continue;
      s.worker.send(stamped);
    }
  }

  async function stopAll(): Promise<boolean> {
    stopping = true;
    for (const t of restarts) clearTimeout(t);
    restarts.clear();
    // The writer last: the workers' reports in flight are written and answered as they stop.
    const exits = [...entries.entries()].filter(([slot]) => slot !== writerSlot).map(([slot, s]) => stopWorker(slot, s));
    let clean = (await Promise.all(exits)).every(Boolean);
    const writer = entries.get(writerSlot);
    if (writer) clean = (await stopWorker(writerSlot, writer)) && clean;
    process.off('SIGHUP', onHup);
    desk.close();
    return clean;
  }

  async function stopWorker(slot: number, { worker, ready }: Slot): Promise<boolean> {
    // Already dead (its death was logged, its restart is cancelled): nothing to stop.
    if (worker.process.exitCode !== null || worker.process.signalCode !== null) return true;
    const exited = new Promise<boolean>((resolve) => worker.once('exit', (code) => resolve(code === 0 || !ready)));
    // A worker still starting listens for no stop yet, and has written nothing the primary did not prepare.
    if (ready && worker.isConnected()) worker.send({ berth: 'stop' });
    else worker.process.kill('SIGKILL');
    const timer = setTimeout(() => {
      log.error({ worker: slot, pid: worker.process.pid }, `worker ${slot} did not stop within ${STOP_GRACE_MS / 1000} s; killing it`);
      worker.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  // TLS reloads on SIGHUP in each worker (common/serve.ts); the operator signals the primary.
  const onHup = () => {
    for (const s of entries.values()) s.worker.process.kill('SIGHUP');
  };
  if (options.tls) process.on('SIGHUP', onHup);

  try {
    // Worker 1 alone first: it migrates, makes the key vault and the first admin token while no
    // other process can race it; the others start once it listens (and find all that done).
    for (const slots of [[1], [...Array.from({ length: workers - 1 }, (_, i) => i + 2), ...(forksWriter(workers) ? [writerSlot] : [])]]) {
      await new Promise<void>((resolve, reject) => {
        onStartFailure = reject;
        onReady = () => {
          if (slots.every((slot) => entries.get(slot)?.ready)) resolve();
        };
        for (const slot of slots) fork(slot, 0);
      });
    }
  } catch (err) {
    await stopAll();
    throw err;
  } finally {
    onStartFailure = null;
    onReady = null;
    process.off('SIGINT', onEarly);
    process.off('SIGTERM', onEarly);
  }
  log.info({ url, workers, pids: [...entries.values()].map((s) => s.worker.process.pid) }, 'control plane listening');
  if (early) {
    log.info({ signal: early }, 'stopping (asked while starting)');
    const clean = await stopAll();
    log.info('control plane stopped');
    exit(clean ? 0 : 1);
  }

  return {
    async close() {
      const clean = await stopAll();
      if (!clean) throw new Error('a worker did not stop cleanly');
      log.info('control plane stopped');
    },
  };
}
