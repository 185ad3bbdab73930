import type { HttpsTrust } from '../tls-trust.js';
import { httpRequest, isConnectionError, type HttpAnswer } from '../http-client.js';
import { deltaPlanResponse, type DeltaPlanRequest, type DeltaPlanResponse } from './wire.js';

export interface PlanClientOptions {
  /** The registry proxy's base URL. */
  proxy: string;
  token?: string;
  /** The fleet's CA for an https: proxy. */
  trust?: HttpsTrust;
  request: DeltaPlanRequest;
  /** Gives up (with the last pending plan) after this long. Default 10 minutes. */
  maxWaitMs?: number;
  signal?: AbortSignal;
  /** Called with each 202 answer, before waiting its Retry-After. */
  onPending?(plan: DeltaPlanResponse): void;
}

export class DeltaPlanError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'DeltaPlanError';
  }
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason as Error); }, { once: true });
  });
}

/**
 * Asks the proxy for a delta plan until nothing in it is pending, honouring Retry-After: what a
 * gateway does before an update, and what `warm --delta-from` does to have the deltas ready.
 * Returns the last plan (still with pending layers when `maxWaitMs` ran out).
 */
export async function settledDeltaPlan(opts: PlanClientOptions): Promise<DeltaPlanResponse> {
  const deadline = Date.now() + (opts.maxWaitMs ?? 600_000);
  const url = `${opts.proxy.replace(/\/+$/, '')}/berth/v1/deltas/plan`;
  const ask = (): Promise<HttpAnswer> =>
    httpRequest(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
      body: JSON.stringify(opts.request),
      signal: opts.signal,
      trust: opts.trust,
      headersTimeoutMs: 60_000,
    });
  for (;;) {
    // A kept-alive connection the proxy closed as it was reused fails at once: the plan is
    // idempotent, so it is asked once more on a new connection.
    const res = await ask().catch((err: unknown) => {
      if (isConnectionError(err)) return ask();
      throw err;
    });
    const text = await res.text(4 << 20);
    if (res.status !== 200 && res.status !== 202) throw new DeltaPlanError(res.status, `delta plan for ${opts.request.target} refused (${res.status}): ${text.slice(0, 500)}`);
    const plan = deltaPlanResponse.parse(JSON.parse(text));
    if (res.status === 200 || Date.now() >= deadline) return plan;
    opts.onPending?.(plan);
    const seconds = Number(res.header('retry-after') ?? plan.retryAfter ?? 2);
    await wait(Math.min(Math.max(seconds, 0.1) * 1000, Math.max(0, deadline - Date.now())), opts.signal);
  }
}
