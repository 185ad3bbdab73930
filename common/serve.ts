import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { getRequestListener, serve } from '@hono/node-server';
import type { Logger } from './log.js';
import { parseListenList, type ListenAddress } from './listen.js';
import { readPrivateKeyFile, TlsConfigError } from './key-file.js';

export { TlsConfigError };

/**
 * How both servers (control plane, registry proxy) listen: plain HTTP, or HTTPS from PEM files
 * (`--tls-cert` with its chain, `--tls-key`). Certificates rotate every 60–90 days, so SIGHUP
 * reloads both files into the running server: open connections and long polls keep the context
 * they started with, new handshakes get the new one, and a bad pair is refused and the old kept.
 */

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Ask every client for a certificate and verify it against this CA when one is sent (device mTLS). */
  clientCaFile?: string;
}

export interface ServeOptions {
  fetch: Parameters<typeof serve>[0]['fetch'];
  /** HOST:PORT as `--listen` takes it; a comma-separated list serves on each address. */
  listen: string;
  tls?: TlsFiles;
  log: Logger;
  /** Node's `requestTimeout` for every address (0: none); Node's default when absent. */
  requestTimeoutMs?: number;
  /**
   * Answers the few hottest requests on node:http itself, before the Hono adapter builds a WHATWG
   * Request and Response for them: returns true when it took the request, false to leave it to `fetch`.
   */
  direct?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface Served {
  /** `https://HOST:PORT` with TLS, else `http://…`: the first address. */
  url: string;
  /** One per listened address, in the order given (all answer with the same app). */
  urls: string[];
  /** Reads the files again and swaps the certificate for new handshakes (SIGHUP does it too). */
  reload(): Promise<void>;
  /** Stops answering SIGHUP (the caller then closes). */
  dispose(): void;
  /** Stops listening on every address; connections still open after `graceMs` are cut (0: at once). */
  close(graceMs: number): Promise<void>;
}

/** TLS 1.2 is the floor: 1.0 and 1.1 are deprecated (RFC 8996). */
const MIN_VERSION = 'TLSv1.2';

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Both files or neither; said in the flags' words. */
export function tlsFilesOf(cert: string | undefined, key: string | undefined, clientCa?: string): TlsFiles | undefined {
  if (!cert && !key) {
    if (clientCa) throw new TlsConfigError('--device-client-ca needs --tls-cert and --tls-key: client certificates are asked for in the TLS handshake');
    return undefined;
  }
  if (!cert || !key) throw new TlsConfigError(`--tls-cert and --tls-key go together (got only ${cert ? '--tls-cert' : '--tls-key'})`);
  return { certFile: cert, keyFile: key, ...(clientCa ? { clientCaFile: clientCa } : {}) };
}

async function readPem(flag: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new TlsConfigError(`${flag} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Reads and checks the files: a key that does not match the certificate fails here, not at the first handshake. */
export async function loadTls(files: TlsFiles): Promise<{ options: SecureContextOptions; notAfter: string; fingerprint: string }> {
  const cert = await readPem('--tls-cert', files.certFile);
  const key = await readPrivateKeyFile(files.keyFile);
  const ca = files.clientCaFile ? await readPem('--device-client-ca', files.clientCaFile) : undefined;
  const options: SecureContextOptions = { cert, key, minVersion: MIN_VERSION, ...(ca ? { ca } : {}) };
  let leaf: X509Certificate;
  try {
    createSecureContext(options);
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new TlsConfigError(`--tls-cert ${files.certFile} / --tls-key ${files.keyFile}: ${(err as Error).message}`);
  }
  return { options, notAfter: leaf.validTo, fingerprint: leaf.fingerprint256 };
}

/**
 * How long an idle keep-alive connection is kept, and how long a request's headers may take. Node's
 * default keep-alive (5 s) equals the daemon's client reuse (Node's global agent: 5 s, or the
 * server's `Keep-Alive: timeout` hint less 1 s): a request sent on a socket idle for just under 5 s
 * met a server closing it, and with the event loop a second behind the server's timer fired before
 * it read the request already there: ECONNRESET. With the server's timeout far longer than any
 * client's reuse, the client always closes first. Headers must be allowed longer than the
 * keep-alive (Node checks headersTimeout from the connection's last request).
 */
export const KEEP_ALIVE_MS = 65_000;
export const HEADERS_TIMEOUT_MS = 66_000;

/**
 * Connections the kernel completes and queues before the server accepts them (capped by
 * net.core.somaxconn). Node's default, 511, overflows when a fleet reconnects at once (a control
 * plane restarted under 100,000 gateways): a dropped SYN is retried after 1, 3, 7, 15… s, a tail of
 * minutes for the unlucky, where a queued connection waits only for the loop's next turn.
 */
export const LISTEN_BACKLOG = 4096;

function listenOne(opts: ServeOptions, { host, port }: ListenAddress, tls: Awaited<ReturnType<typeof loadTls>> | undefined): Promise<Server> {
  const adapter = getRequestListener(opts.fetch, { hostname: host });
  const direct = opts.direct;
  const listener = direct ? (req: IncomingMessage, res: ServerResponse) => void (direct(req, res) || adapter(req, res)) : adapter;
  const s = (
    tls
      ? createHttpsServer(
          // A client certificate is asked for but not required at the handshake: operators have
          // none; the device routes check it themselves (control-plane/device-api/client-cert.ts).
          { ...tls.options, ...(opts.tls?.clientCaFile ? { requestCert: true, rejectUnauthorized: false } : {}) },
          listener,
        )
      : createHttpServer(listener)
  ) as Server;
  s.keepAliveTimeout = KEEP_ALIVE_MS;
  s.headersTimeout = HEADERS_TIMEOUT_MS;
  if (opts.requestTimeoutMs !== undefined) s.requestTimeout = opts.requestTimeoutMs;
  return new Promise<Server>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ port, host, backlog: LISTEN_BACKLOG }, () => resolve(s));
  });
}

/** Listens on every address of the list; resolves once all are bound (none stays bound if one fails). */
export async function serveHttp(opts: ServeOptions): Promise<Served> {
  const addresses = parseListenList(opts.listen);
  const log = opts.log;
  const tls = opts.tls ? await loadTls(opts.tls) : undefined;
  const servers: Server[] = [];
  try {
    for (const a of addresses) servers.push(await listenOne(opts, a, tls));
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  const urls = servers.map((server) => {
    const addr = server.address() as AddressInfo;
    return `${tls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  });
  const [url] = urls;
  if (tls) log.info({ urls, certificate: opts.tls!.certFile, notAfter: tls.notAfter, fingerprint: tls.fingerprint }, 'serving HTTPS (TLS 1.2 minimum)');
  for (const [i, a] of addresses.entries()) {
    if (!tls && !isLoopback(a.host)) {
      log.warn({ url: urls[i], listen: opts.listen }, `PLAIN HTTP ON A NON-LOOPBACK ADDRESS (${a.host}:${a.port}): bearer tokens travel in clear; serve HTTPS with --tls-cert and --tls-key`);
    }
  }

  const reload = async () => {
    if (!opts.tls) return;
    try {
      const next = await loadTls(opts.tls);
      for (const s of servers) (s as unknown as HttpsServer).setSecureContext(next.options);
      log.info({ certificate: opts.tls.certFile, notAfter: next.notAfter, fingerprint: next.fingerprint }, 'TLS certificate reloaded');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'TLS reload refused; still serving the previous certificate');
      throw err;
    }
  };
  const onHup = () => void reload().catch(() => undefined);
  if (opts.tls) process.on('SIGHUP', onHup);
  const close = async (graceMs: number) => {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            if (graceMs === 0) s.closeAllConnections();
            else setTimeout(() => s.closeAllConnections(), graceMs).unref();
          }),
      ),
    );
  };
  return { url, urls, reload, dispose: () => void process.off('SIGHUP', onHup), close };
}
