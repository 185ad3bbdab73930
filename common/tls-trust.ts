import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { httpRequest } from './http-client.js';

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
  const identity = client ? { cert: await readFile(client.certFile), key: await readFile(client.keyFile) } : {};
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

const UNTRUSTED = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE']);

/** A TLS verification failure in plain words (what, whose, what to do), or null for other errors. */
export function describeTlsError(err: unknown, url: string, caFile?: string): string | null {
  const e = (err instanceof Error && (err as { cause?: unknown }).cause instanceof Error ? (err as { cause: Error }).cause : err) as NodeJS.ErrnoException;
  const code = e?.code;
  if (!code) return null;
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  if (UNTRUSTED.has(code)) {
    return `the TLS certificate of ${host} is not signed by a CA this client trusts (${code}); ${caFile ? `it is not from the CA in ${caFile}` : "pass the fleet's CA with --ca-file"}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the TLS certificate of ${host} does not name ${new URL(url).hostname} (${e.message})`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the TLS certificate of ${host} is not valid now (${code})`;
  return null;
}

/** `fetch` for code written against it (the CLI, the proxy's JWKS), over node:https with this trust. */
export function trustingFetch(trust: HttpsTrust | undefined): typeof fetch {
  if (!trust) return fetch;
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const headers = Object.fromEntries(new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)));
    const body = init?.body == null ? undefined : typeof init.body === 'string' ? init.body : Buffer.from(await new Response(init.body).arrayBuffer());
    const answer = await httpRequest(url, { method, headers, body, signal: init?.signal ?? undefined, trust });
    const out = new Headers();
    for (const [k, v] of Object.entries(answer.message.headers)) for (const x of [v ?? []].flat()) out.append(k, x);
    const bodiless = method === 'HEAD' || [204, 205, 304].includes(answer.status);
    if (bodiless) answer.discard();
    return new Response(bodiless ? null : (Readable.toWeb(answer.message) as ReadableStream), { status: answer.status, statusText: answer.message.statusMessage, headers: out });
  }) as typeof fetch;
}
