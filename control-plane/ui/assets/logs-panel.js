// The twin's logs panel: a gateway's container logs through the control plane, never stored.
// Release managers and admins only (the API's rule: a viewer may not read logs).
import { records, token } from './api.js';
import { h } from './dom.js';

const MAX_LINES = 2000;

export function logsPanel(serial, services) {
  let ctrl = null;
  const out = h('pre', { class: 'logs', tabindex: '0', 'aria-label': 'log lines', 'aria-live': 'off' });
  const status = h('span', { role: 'status', class: 'muted' });
  const service = h('select', { id: 'logs-service', name: 'service' }, h('option', { value: '' }, 'all services'), services.map((s) => h('option', { value: s }, s)));
  const tail = h('input', { id: 'logs-tail', name: 'tail', type: 'number', min: '0', max: '10000', value: '100', class: 'short' });
  const follow = h('input', { id: 'logs-follow', name: 'follow', type: 'checkbox' });
  const stopButton = h('button', { type: 'button', disabled: true, onclick: () => stop('stopped') }, 'Stop');

  function stop(why) {
    ctrl?.abort();
    ctrl = null;
    stopButton.disabled = true;
    if (why) status.textContent = why;
  }

  async function start(e) {
    e.preventDefault();
    stop();
    out.replaceChildren();
    const q = new URLSearchParams({ tail: tail.value || '100' });
    if (service.value) q.set('service', service.value);
    if (follow.checked) q.set('follow', 'true');
    const mine = (ctrl = new AbortController());
    stopButton.disabled = false;
    status.textContent = 'asking the gateway…';
    try {
      const res = await fetch(`/v1/devices/${encodeURIComponent(serial)}/logs?${q}`, { headers: { authorization: `Bearer ${token()}` }, signal: mine.signal, cache: 'no-store' });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
      }
      status.textContent = follow.checked ? 'following…' : 'reading…';
      let n = 0;
      for await (const raw of records(res.body, '\n')) {
        if (!raw) continue;
        const item = JSON.parse(raw);
        if (item.end) { status.textContent = `ended: ${item.end}`; continue; }
        out.append(h('span', { class: item.stream === 'stderr' ? 'err' : null, 'data-service': item.service }, `${item.service} | ${item.line}\n`));
        if (++n > MAX_LINES) out.firstChild?.remove();
        out.scrollTop = out.scrollHeight;
      }
      if (!status.textContent.startsWith('ended')) status.textContent = `${n} line${n === 1 ? '' : 's'}`;
    } catch (err) {
      if (!mine.signal.aborted) status.textContent = err.message;
    } finally {
      if (ctrl === mine) { ctrl = null; stopButton.disabled = true; }
    }
  }

  const form = h('form', { class: 'filter', onsubmit: start },
    h('label', { for: 'logs-service' }, 'Service'), service,
    h('label', { for: 'logs-tail' }, 'Last lines'), tail,
    h('label', { for: 'logs-follow' }, follow, ' Follow'),
    h('button', { type: 'submit', class: 'primary' }, 'Show logs'), stopButton, status);
  // Leaving the page stops a follow: the gateway stops sending within seconds.
  window.addEventListener('hashchange', () => stop(), { once: true });
  return h('section', { 'aria-label': 'logs' }, h('h2', null, 'Logs'), h('p', { class: 'hint' }, 'Asked from the gateway over its own control channel and relayed; nothing is stored. Reads are audited.'), form, out);
}
