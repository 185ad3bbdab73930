import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { planBlob, sendBlobFile } from '../../common/blob-http.js';
import { isDigest } from '../../common/digest.js';
import type { Logger } from '../gateway-log.js';
import type { GcPacer } from './gc-pacer.js';

/** What the handover registry serves: verified manifests and blobs, by digest only. */
export interface HandoverSource {
  manifest(digest: string): Promise<{ bytes: Buffer; mediaType: string } | undefined>;
  /** A blob's file in the store; may fetch it first (verified) when the engine asks for a skipped layer. */
  blob(digest: string): Promise<{ path: string; size: number } | undefined>;
}

export interface HandoverRegistry {
  /** `127.0.0.1:<port>`, the registry part of the references the engine pulls. */
  host: string;
  close(): Promise<void>;
}

/**
 * Read size while handing a layer to the engine. One chunk is read while the previous one drains
 * into the loopback socket, so two are in flight: 256 KiB keeps that under 1 MiB of the gateway's
 * memory (1 MiB chunks cost ~4 MiB more at the peak of an update) at no measurable cost in speed
 * on loopback.
 */
const HANDOVER_CHUNK = 256 << 10;

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };

function answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...API_VERSION, 'Content-Type': 'application/json', 'Content-Length': String(bytes.length), ...headers });
  res.end(bytes);
}

function ociError(res: ServerResponse, status: number, code: string, message: string): void {
  answer(res, status, { errors: [{ code, message }] });
}

const PATH = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;

/**
 * A read-only OCI registry on loopback that hands the daemon's verified store to the local engine.
 * Docker treats 127.0.0.0/8 as an insecure registry, so plain HTTP works without any engine config;
 * binding to 127.0.0.1 keeps it off every other interface. Only digests are served (no tags): the
 * engine pulls exactly the bytes the signed deployment pinned. Plain node:http (not Hono and web
 * streams): it is loaded on a gateway in the middle of an update, when memory is at its peak.
 */
export function handoverHandler(source: HandoverSource, log: Logger, pacer?: GcPacer): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') return ociError(res, 405, 'UNSUPPORTED', `${method} is not served: this registry is read-only`);
    const path = new URL(req.url ?? '/', 'http://handover').pathname;
    if (path === '/v2/' || path === '/v2') return answer(res, 200, {});
    const m = PATH.exec(path);
    if (!m) return ociError(res, 404, 'NAME_UNKNOWN', `no such route ${path}`);
    const [, name, kind, reference] = m;
    if (!isDigest(reference)) return ociError(res, 404, kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `only sha256 digests are served, not ${reference}`);
    if (kind === 'manifests') {
      const found = await source.manifest(reference);
      if (!found) return ociError(res, 404, 'MANIFEST_UNKNOWN', `manifest ${reference} of ${name} is not in the store`);
      res.writeHead(200, { ...API_VERSION, 'Content-Type': found.mediaType, 'Content-Length': String(found.bytes.length), 'Docker-Content-Digest': reference, ETag: `"${reference}"` });
      res.end(method === 'HEAD' ? undefined : found.bytes);
      return;
    }
    let blob: { path: string; size: number } | undefined;
    try {
      blob = await source.blob(reference);
    } catch (err) {
      log.warn({ digest: reference, repository: name, err: (err as Error).message }, 'handover: blob could not be provided');
      return ociError(res, 502, 'BLOB_UNKNOWN', `blob ${reference}: ${(err as Error).message}`);
    }
    if (!blob) return ociError(res, 404, 'BLOB_UNKNOWN', `blob ${reference} of ${name} is not in the store`);
    const plan = planBlob({ method, range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined }, { size: blob.size, digest: reference });
    plan.headers = { ...API_VERSION, ...plan.headers };
    // Each read is a fresh buffer outside the V8 heap: the pacer has them collected as they go.
    await sendBlobFile(res, plan, blob.path, () => HANDOVER_CHUNK, pacer ? (n) => pacer.moved(n) : undefined);
  };
  return async (req, res) => {
    try {
      await serve(req, res);
    } catch (err) {
      log.warn({ url: req.url, err: (err as Error).message }, 'handover: request failed');
      if (!res.headersSent) ociError(res, 500, 'UNKNOWN', (err as Error).message);
      else res.destroy();
    }
  };
}

/** net.Server's own bind-and-listen step, `(address, port, addressType, backlog)`; see listenOnLoopback. */
type BindAndListen = (this: Server, address: string, port: number, addressType: 4 | 6, backlog?: number) => void;

/**
 * Listens on 127.0.0.1, on a port the kernel picks. Not through `server.listen(port, host)`: that
 * resolves the host with `dns` and then asks `cluster` whether a primary process holds the port,
 * which loads cluster, child_process, dgram and dns into a daemon that never forks, for good
 * (≈ 0.6 MiB resident from its first handover on; issue 11, edge-daemon/README.md, Seventh pass).
 * `listen` ends, in a process that is no cluster worker, in `_listen2`, net.Server's bind-and-listen
 * step, kept as a legacy alias since Node 0.x because code wraps it; it emits `listening` or
 * `error` as `listen` does. Where a runtime has no such method, `listen` itself.
 */
function listenOnLoopback(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    const bindAndListen = (server as unknown as { _listen2?: BindAndListen })._listen2;
    if (typeof bindAndListen === 'function') bindAndListen.call(server, '127.0.0.1', 0, 4);
    else server.listen(0, '127.0.0.1');
  });
}

export async function startHandoverRegistry(source: HandoverSource, log: Logger, pacer?: GcPacer): Promise<HandoverRegistry> {
  const handle = handoverHandler(source, log, pacer);
  const server = createServer((req, res) => {
    // No Date header: the engine does not read it, and formatting it loads ICU's time-zone data
    // into the daemon for good (0.6 MiB resident, issue 11; see ../iso-time.ts).
    res.sendDate = false;
    void handle(req, res);
  });
  await listenOnLoopback(server);
  const port = (server.address() as AddressInfo).port;
  log.debug({ port }, 'handover registry listening on loopback');
  return {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
