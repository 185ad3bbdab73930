import { httpRequest, type HttpAnswer } from '../common/http-client.js';
import type { HttpsTrust } from '../common/tls-trust.js';

/**
 * The control channel's HTTP: small JSON requests through `common/http-client` (node:http, not
 * `fetch`: the first `fetch` loads undici, +12 MB resident in the daemon).
 */
export type ControlAnswer = HttpAnswer;

/** What undici gave a silent server before giving up: an answer (or its body) idle this long fails. */
const IDLE_MS = 300_000;

export function controlRequest(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal; trust?: HttpsTrust },
): Promise<ControlAnswer> {
  return httpRequest(url, { ...init, idleTimeoutMs: IDLE_MS });
}
