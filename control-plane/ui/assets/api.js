// The console's only way to the control plane: the operator API with the token from
// sessionStorage (never localStorage: it ends with the tab), and the change stream.

const KEY = 'berth.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** `/ui/#token=…`: read once, kept in sessionStorage, removed from the address bar and history. */
export function takeTokenFromFragment() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return false;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search + '#/');
  return true;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? null;
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = { accept: 'application/json', authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});

/**
 * The records of a streamed answer body, split on `separator` (a line, an SSE block); a record
 * cut between two chunks waits for the rest. One reader for the change stream and the logs panel.
 */
export async function* records(body, separator) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf(separator)) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + separator.length);
    }
  }
}

/**
 * Server-Sent Events read with fetch, so the token travels in the Authorization header, never in
 * a URL (EventSource cannot set headers). Reconnects with a growing delay; `stop()` ends it.
 */
export function changes(onChange, onState) {
  const ctrl = new AbortController();
  let delay = 1000;
  (async () => {
    while (!ctrl.signal.aborted) {
      try {
        const res = await fetch('/v1/console/stream', { headers: { accept: 'text/event-stream', authorization: `Bearer ${token()}` }, signal: ctrl.signal, cache: 'no-store' });
        if (res.status === 401) { onState('unauthorized'); return; }
        if (!res.ok || !res.body) throw new Error(`stream: HTTP ${res.status}`);
        onState('live');
        delay = 1000;
        for await (const block of records(res.body, '\n\n')) {
          const event = /^event: (.*)$/m.exec(block)?.[1];
          if (event === 'change') onChange();
        }
      } catch (err) {
        if (ctrl.signal.aborted) return;
      }
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return { stop: () => ctrl.abort() };
}
