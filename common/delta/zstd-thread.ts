import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * zstd compression off the event loop. zstd-napi's calls are synchronous, and at level 19 one
 * file with its dictionary takes seconds: in the proxy's thread that would stall every download it
 * serves. So an encoder owns one worker thread that runs its compressions in order. The worker is
 * a plain JavaScript module in a data: URL (it needs nothing but the binding), so it runs the same
 * from TypeScript tests and from dist. (An eval'd CommonJS worker gets vitest's test process
 * killed here; a data: module does not.)
 */
const WORKER_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const z = createRequire(workerData.binding)(workerData.binding);
let stream = null;
let patcher = null;
const buf = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
function patch(m) {
  const c = (patcher ??= new z.CCtx());
  c.reset(z.ResetDirective.sessionAndParameters);
  c.setParameter(z.CParameter.compressionLevel, m.level);
  c.setParameter(z.CParameter.windowLog, m.windowLog);
  if (m.tableLog) {
    c.setParameter(z.CParameter.hashLog, m.tableLog);
    c.setParameter(z.CParameter.chainLog, m.tableLog);
  }
  c.setParameter(z.CParameter.contentSizeFlag, 1);
  c.loadDictionary(buf(m.dict));
  const out = Buffer.allocUnsafe(z.compressBound(m.target.byteLength));
  return [out.subarray(0, c.compress2(out, buf(m.target)))];
}
function write(m) {
  if (!stream) {
    stream = new z.CCtx();
    stream.setParameter(z.CParameter.compressionLevel, m.level);
    stream.setParameter(z.CParameter.windowLog, m.windowLog);
    stream.setParameter(z.CParameter.checksumFlag, 1);
  }
  let src = buf(m.data);
  const chunks = [];
  const directive = m.end ? z.EndDirective.end : z.EndDirective.continue;
  for (;;) {
    const out = Buffer.allocUnsafe(256 * 1024);
    const [remaining, produced, consumed] = stream.compressStream2(out, src, directive);
    src = src.subarray(consumed);
    if (produced > 0) chunks.push(out.subarray(0, produced));
    if (m.end ? remaining === 0 : src.length === 0) return chunks;
  }
}
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, chunks: m.op === 'patch' ? patch(m) : write(m) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

type Reply = { id: number; chunks?: Uint8Array[]; error?: string };

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
/** A message carries a view's whole backing store: send slices of large buffers as copies. */
const compact = (b: Buffer): Buffer => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b));

export class ZstdThread {
  private readonly worker: Worker;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(chunks: Buffer[]): void; reject(err: Error): void }>();
  private failed: Error | undefined;

  constructor() {
    const binding = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
    this.worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`), { workerData: { binding } });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      if (r.error !== undefined) w?.reject(new Error(`zstd: ${r.error}`));
      else w?.resolve((r.chunks ?? []).map(toBuffer));
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`zstd worker thread exited (${code})`)));
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  private call(message: Record<string, unknown>): Promise<Buffer[]> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  /** One frame of `target` with `dict` as its raw-content dictionary. */
  async patch(dict: Buffer, target: Buffer, level: number, windowLog: number, tableLog: number | undefined): Promise<Buffer> {
    const [frame] = await this.call({ op: 'patch', dict: compact(dict), target: compact(target), level, windowLog, tableLog });
    return frame;
  }

  /** Feeds the thread's one streaming frame; `end` finishes it. Returns the compressed bytes so far. */
  write(data: Buffer, level: number, windowLog: number, end: boolean): Promise<Buffer[]> {
    return this.call({ op: 'write', data: compact(data), level, windowLog, end });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
