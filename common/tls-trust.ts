import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { httpRequest, isConnectionError } from './http-client.js';
import { readPrivateKeyFile } from './key-file.js';

export { describeTlsError } from './tls-errors.js';

/**
 * Trusting a fleet's private CA (`--ca-file`), in addition to the public roots Node ships:
 * certificates are always verified, and there is no way to turn that off. One keep-alive agent
 * per trust, so each client (a daemon's control and download channels, the CLI, the proxy's
 * upstreams) keeps its own trust; nothing process-wide such as NODE_EXTRA_CA_CERTS is touched.
 */

export interface HttpsTrust {
  /** The file the CA came from, for messages (none: the public roots only, with a client certificate). */
  caFile?: string;
  agent: Agent;
}

/** Reads a PEM bundle of one or more CA certificates; refused with the flag named when it is not one. */
export async function loadTrust(caFile: string | undefined, flag = '--ca-file', client?: { certFile: string; keyFile: string }): Promise<HttpsTrust> {
  const identity = client ? { cert: await readFile(client.certFile), key: await readPrivateKeyFile(client.keyFile, '--tls-client-key') } : {};
  if (!caFile) return { agent: new Agent({ keepAlive: true, ...identity }) };
  let pem: string;
  try {
    pem = await readFile(caFile, 'utf8');
  } catch (err) {
    throw new Error(`${flag} ${caFile}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${flag} ${caFile}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new Error(`${flag} ${caFile}: certificate ${i + 1} is not valid: ${(err as Error).message}`);
    }
  }
  return { caFile, agent: new Agent({ keepAlive: true, ca: [...rootCertificates, ...blocks], ...identity }) };
}

/** `fetch` for code written against it (the CLI, the proxy's JWKS), over node:https with this trust. */
export function trustingFetch(trust: HttpsTrust | undefined): typeof fetch {
  if (!trust) return fetch;
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const headers = Object.fromEntries(new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)));
    const body = init?.body == null ? undefined : typeof init.body === 'string' ? init.body : Buffer.from(await new Response(init.body).arrayBuffer());
    const send = () => httpRequest(url, { method, headers, body, signal: init?.signal ?? undefined, trust });
    // A kept-alive socket the server closes just as it is reused fails at once, before any answer
    // (seen under load): an idempotent request is sent once more, on a new connection.
    const answer = await send().catch((err: unknown) => {
      if ((method === 'GET' || method === 'HEAD') && isConnectionError(err) && !init?.signal?.aborted) return send();
      throw err;
    });
    const out = new Headers();
    for (const [k, v] of Object.entries(answer.message.headers)) for (const x of [v ?? []].flat()) out.append(k, x);
    const bodiless = method === 'HEAD' || [204, 205, 304].includes(answer.status);
    if (bodiless) answer.discard();
    return new Response(bodiless ? null : (Readable.toWeb(answer.message) as ReadableStream), { status: answer.status, statusText: answer.message.statusMessage, headers: out });
  }) as typeof fetch;
}
