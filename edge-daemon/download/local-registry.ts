import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { blobResponse } from '../../common/blob-http.js';
import { isDigest } from '../../common/digest.js';
import type { Logger } from '../../common/log.js';
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

function ociError(status: number, code: string, message: string): Response {
  return Response.json({ errors: [{ code, message }] }, { status, headers: { 'Docker-Distribution-API-Version': 'registry/2.0' } });
}

const PATH = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;

/**
 * A read-only OCI registry on loopback that hands the daemon's verified store to the local engine.
 * Docker treats 127.0.0.0/8 as an insecure registry, so plain HTTP works without any engine config;
 * binding to 127.0.0.1 keeps it off every other interface. Only digests are served (no tags): the
 * engine pulls exactly the bytes the signed deployment pinned.
 */
export function handoverApp(source: HandoverSource, log: Logger, pacer?: GcPacer): Hono {
  const app = new Hono();
  app.on(['GET', 'HEAD'], '/v2/', (c) => c.json({}, 200, { 'Docker-Distribution-API-Version': 'registry/2.0' }));
  app.on(['GET', 'HEAD'], '/v2/*', async (c) => {
    const m = PATH.exec(c.req.path);
    if (!m) return ociError(404, 'NAME_UNKNOWN', `no such route ${c.req.path}`);
    const [, name, kind, reference] = m;
    if (!isDigest(reference)) return ociError(404, kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `only sha256 digests are served, not ${reference}`);
    if (kind === 'manifests') {
      const found = await source.manifest(reference);
      if (!found) return ociError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} of ${name} is not in the store`);
      const headers = {
        'Content-Type': found.mediaType,
        'Content-Length': String(found.bytes.length),
        'Docker-Content-Digest': reference,
        ETag: `"${reference}"`,
        'Docker-Distribution-API-Version': 'registry/2.0',
      };
      return new Response(c.req.method === 'HEAD' ? null : new Uint8Array(found.bytes), { status: 200, headers });
    }
    let blob: { path: string; size: number } | undefined;
    try {
      blob = await source.blob(reference);
    } catch (err) {
      log.warn({ digest: reference, repository: name, err: (err as Error).message }, 'handover: blob could not be provided');
      return ociError(502, 'BLOB_UNKNOWN', `blob ${reference}: ${(err as Error).message}`);
    }
    if (!blob) return ociError(404, 'BLOB_UNKNOWN', `blob ${reference} of ${name} is not in the store`);
    const res = blobResponse(c.req.raw, { path: blob.path, size: blob.size, digest: reference });
    return pacer ? paced(res, pacer) : res;
  });
  return app;
}

/** The same answer, its body counted by the pacer as it leaves (each chunk is a fresh 1 MiB read). */
function paced(res: Response, pacer: GcPacer): Response {
  if (!res.body) return res;
  const count = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      pacer.moved(chunk.byteLength);
    },
  });
  return new Response(res.body.pipeThrough(count), { status: res.status, headers: res.headers });
}

export async function startHandoverRegistry(source: HandoverSource, log: Logger, pacer?: GcPacer): Promise<HandoverRegistry> {
  const app = handoverApp(source, log, pacer);
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once('listening', () => resolve());
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  log.debug({ port }, 'handover registry listening on loopback');
  return {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}
