import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The workers' batches straight to the writer process of `--workers N` (cluster-batches.ts), on a
 * Unix socket the writer listens on, not through the primary (issue 17). Through the primary every
 * batch took four IPC messages (worker → primary → writer → primary → worker), each a JSON
 * serialization and a wake-up of one more process; the primary alone spent 6 % of the cluster's CPU
 * through a 20,000-device campaign relaying them (control-plane/SCALING.md). What this changes is
 * only the way: the writer answers each batch after the commit that holds it, as before, and while
 * no socket is connected (the writer starting, or started again after it died) a worker's batches
 * go through the primary, which holds them until the writer is ready.
 *
 * One JSON message a line, as Node's IPC channel frames them (JSON escapes every newline inside).
 */

/** The longest path Linux takes for a Unix socket (sun_path: 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;
/** How often a worker tries the socket again while the writer is not listening. */
const RECONNECT_MS = 500;

/**
 * Where the writer of the cluster whose primary is `primaryPid` listens: a socket in a directory of
 * this user's alone (made 0700, and checked: a directory someone else made, one open to others, or
 * a link is refused), so no other user of the machine can hand the writer a report. null when no
 * such directory can be had or the path is too long for a socket: the batches then go through the
 * primary.
 */
export function writerSocketPath(primaryPid: number, dir = join(tmpdir(), `berth-${process.getuid?.() ?? 'user'}`)): string | null {
  const path = join(dir, `writer-${primaryPid}.sock`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) return null;
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return null;
  }
  try {
    const st = lstatSync(dir);
    const uid = process.getuid?.();
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) return null;
  } catch {
    return null;
  }
  return path;
}

/** Reads `socket` as one JSON message a line; a line that is not JSON ends the connection. */
function readLines(socket: Socket, onMessage: (msg: unknown) => void): void {
  let rest = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        socket.destroy();
        return;
      }
      onMessage(msg);
    }
  });
}

/** A message as one line: JSON escapes every newline inside it. The messages are cluster-batches.ts's; this module only carries them. */
const lineOf = (msg: unknown) => JSON.stringify(msg) + '\n';

/**
 * The writer's side: listens at `path` (a socket left by a writer that died is replaced) and hands
 * each message of a worker to `receive` with the way back to that worker (cluster-batches.ts checks it).
 */
export async function listenForWorkers<Reply>(path: string, receive: (msg: unknown, reply: (msg: Reply) => void) => void): Promise<{ close(): Promise<void> }> {
  rmSync(path, { force: true });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A worker gone mid-write: what it was owed is dropped with its socket (it refused those items itself).
    socket.on('error', () => undefined);
    const reply = (msg: Reply) => {
      if (socket.writable) socket.write(lineOf(msg));
    };
    readLines(socket, (msg) => receive(msg, reply));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.end();
      await closed;
      rmSync(path, { force: true });
    },
  };
}

/**
 * A worker's side: connected to the writer's socket when it can be (tried again every RECONNECT_MS
 * while it cannot), `send` false when not. When the connection ends, every batch sent on it and not
 * answered is `lost` (the writer died or stopped: refused 503, found again on the device's retry).
 */
export class WriterSocket<Msg extends { id: number }> {
  private socket: Socket | null = null;
  private readonly unanswered = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly path: string,
    /** Each message the writer sends (cluster-batches.ts checks it); `answered` names the batch it answers. */
    private readonly onMessage: (msg: unknown) => void,
    private readonly lost: (ids: number[]) => void,
  ) {
    this.connect();
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /** The writer answered batch `id` (its answer came through onMessage). */
  answered(id: number): void {
    this.unanswered.delete(id);
    if (this.unanswered.size === 0) this.socket?.unref();
  }

  send(msg: Msg): boolean {
    if (!this.socket) return false;
    // Kept alive while an answer is owed: a stopping worker waits for its requests' writes.
    if (this.unanswered.size === 0) this.socket.ref();
    this.unanswered.add(msg.id);
    this.socket.write(lineOf(msg));
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.destroy();
  }

  private connect(): void {
    this.timer = null;
    if (this.closed) return;
    const s = connect(this.path);
    s.on('connect', () => {
      this.socket = s;
    });
    // Refused or gone: 'close' follows, which tries again.
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.socket === s) {
        this.socket = null;
        const ids = [...this.unanswered];
        this.unanswered.clear();
        this.lost(ids);
      }
      if (!this.closed) {
        this.timer = setTimeout(() => this.connect(), RECONNECT_MS);
        this.timer.unref();
      }
    });
    readLines(s, this.onMessage);
    // A worker does not stay alive for its link to the writer, only for the answers it waits for (send).
    s.unref();
  }
}
