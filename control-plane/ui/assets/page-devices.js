import { get, post } from './api.js';
import { ago, badge, bytes, errorBox, h, labels, pageTitle, shortDigest, table } from './dom.js';
import { logsPanel } from './logs-panel.js';

const PAGE = 50;

const phaseKind = (p) => (p === 'running' ? 'ok' : p === 'failed' || p === 'rolled-back' ? 'bad' : p ? 'busy' : '');

export async function deviceListPage(view) {
  const selector = view.query.get('selector') ?? '';
  const cursors = [null];
  let index = 0;
  const input = h('input', { id: 'selector', name: 'selector', type: 'search', value: selector, placeholder: 'site=berlin,tier!=canary', spellcheck: 'false', autocomplete: 'off' });
  const form = h('form', { class: 'filter', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    view.navigate(`#/devices?selector=${encodeURIComponent(input.value.trim())}`);
  } }, h('label', { for: 'selector' }, 'Selector'), input, h('button', { type: 'submit' }, 'Filter'),
  h('span', { class: 'hint' }, 'Label selector: k=v, k!=v, k in (a,b), k notin (a), k, !k; commas mean and.'));
  const body = h('div');
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages' });
  const el = h('section', null, pageTitle('Devices'), form, body, pager);
  async function update() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (selector) q.set('selector', selector);
    if (cursors[index]) q.set('after', cursors[index]);
    let list;
    try {
      list = await get(`/v1/devices?${q}`);
    } catch (err) {
      if (err.status === 400) { body.replaceChildren(errorBox(err)); pager.replaceChildren(); return; }
      throw err;
    }
    cursors[index + 1] = list.next;
    body.replaceChildren(
      h('p', { class: 'muted', 'data-total': list.total }, `${list.total} device${list.total === 1 ? '' : 's'}${selector ? ` matching ${selector}` : ''}`),
      table([
        { title: 'Serial', cell: (d) => h('a', { href: `#/devices/${encodeURIComponent(d.serial)}` }, d.serial) },
        { title: 'Labels', cell: (d) => labels(d.labels) },
        { title: 'Online', cell: (d) => (d.status === 'enrolled' ? badge(d.online ? 'online' : 'offline', d.online ? 'ok' : 'warn') : badge(d.status, '')) },
        { title: 'Desired', cell: (d) => d.desired?.release ?? '—' },
        { title: 'Reported', cell: (d) => d.running ?? '—' },
        { title: 'Phase', cell: (d) => (d.phase ? badge(d.phase, phaseKind(d.phase)) : '—') },
        { title: 'Last seen', cell: (d) => h('time', { datetime: d.lastSeenAt ?? '', title: d.lastSeenAt ?? '' }, ago(d.lastSeenAt)) },
      ], list.devices, { label: 'devices', empty: 'No device matches.', rowAttrs: (d) => ({ 'data-serial': d.serial }) }),
    );
    pager.replaceChildren(
      h('button', { type: 'button', disabled: index === 0, onclick: () => { index--; update(); } }, '← Previous'),
      h('span', { class: 'muted' }, ` page ${index + 1} `),
      h('button', { type: 'button', disabled: !list.next, onclick: () => { index++; update(); } }, 'Next →'),
    );
  }
  return { el, update };
}

export async function twinPage(view) {
  const serial = view.params[0];
  const body = h('div');
  const actions = h('div');
  const logsSlot = h('div');
  const el = h('section', null, pageTitle(serial), actions, body, logsSlot);
  if (view.can('release-manager')) {
    const select = h('select', { id: 'assign-release', name: 'release', required: true });
    const status = h('span', { role: 'status' });
    const manifests = (await get('/v1/manifests')).manifests;
    select.replaceChildren(...manifests.map((m) => h('option', { value: `${m.name}@${m.version}` }, `${m.name}@${m.version}`)));
    actions.replaceChildren(h('form', { class: 'filter', onsubmit: async (e) => {
      e.preventDefault();
      status.textContent = 'assigning…';
      try {
        const r = await post(`/v1/devices/${encodeURIComponent(serial)}/assign`, { manifest: select.value });
        status.textContent = `assigned ${r.release} (sequence ${r.sequence})`;
        view.announce(status.textContent);
        await view.refresh();
      } catch (err) {
        status.textContent = err.message;
      }
    } }, h('label', { for: 'assign-release' }, 'Assign release'), select, h('button', { type: 'submit', class: 'primary', disabled: !manifests.length }, 'Assign'), status));
  }
  async function update() {
    const [t, hist] = await Promise.all([get(`/v1/devices/${encodeURIComponent(serial)}`), get(`/v1/devices/${encodeURIComponent(serial)}/history?limit=10`)]);
    const r = t.reported;
    // Built once (an update must not cut a follow); the rule is the API's: release-manager and up.
    if (view.can('release-manager') && !logsSlot.firstChild) logsSlot.append(logsPanel(serial, Object.keys(t.services)));
    const busy = r && ['downloading', 'downloaded', 'applying'].includes(r.phase);
    // replaceChildren would print a null as text: the optional parts go through h().
    body.replaceChildren(
      h('dl', { class: 'facts' },
        h('dt', null, 'State'), h('dd', null, badge(t.online ? 'online' : 'offline', t.online ? 'ok' : 'warn'), ' ', badge(t.inSync ? 'in sync' : 'not in sync', t.inSync ? 'ok' : 'warn'), ' ', badge(t.status, '')),
        h('dt', null, 'Labels'), h('dd', null, labels(t.labels)),
        h('dt', null, 'Desired'), h('dd', { 'data-desired': t.desired?.release ?? '' }, t.desired ? `${t.desired.release} (sequence ${t.desired.sequence}${t.desired.campaign ? `, campaign ${t.desired.campaign}` : ''})` : 'nothing assigned'),
        h('dt', null, 'Reported'), h('dd', { 'data-reported': r?.running ?? '' }, r ? [`${r.running ?? 'nothing'} · `, badge(r.phase, phaseKind(r.phase)), ` · for sequence ${r.desiredSequence ?? '—'} · ${ago(r.receivedAt)}`] : 'no report yet'),
        h('dt', null, 'Last seen'), h('dd', null, ago(t.lastSeenAt)),
        t.previousRelease ? [h('dt', null, 'Previous'), h('dd', null, t.previousRelease)] : null,
      ),
      h('div', null, busy ? h('div', { class: 'progress' }, h('label', { for: 'dl-progress' }, `Downloading ${bytes(r.bytes.done)} of ${bytes(r.bytes.total)}${r.bytes.delta ? ' (delta)' : ''}`), h('progress', { id: 'dl-progress', max: r.bytes.total || 1, value: r.bytes.done })) : null,
      r?.error ? h('pre', { class: 'error-text', 'aria-label': 'last error' }, r.error) : null),
      h('h2', null, 'Services: desired against reported'),
      table([
        { title: 'Service', cell: (s) => s.name },
        { title: 'Desired image', cell: (s) => h('code', { title: s.desiredImage ?? '' }, shortDigest(s.desiredImage)) },
        { title: 'Reported image', cell: (s) => h('code', { title: s.reportedImage ?? '' }, shortDigest(s.reportedImage)) },
        { title: 'Status', cell: (s) => s.status ?? '—' },
        { title: 'Health', cell: (s) => s.health ?? '—' },
        { title: 'Restarts', num: true, cell: (s) => (s.restarts === null ? '—' : String(s.restarts)) },
        { title: 'Drift', cell: (s) => badge(s.drift, s.drift === 'in-sync' ? 'ok' : 'warn') },
        { title: 'Last error', cell: (s) => h('span', { class: 'reason' }, s.lastError ?? '') },
      ], Object.entries(t.services).map(([name, s]) => ({ name, ...s })), { label: 'services', empty: 'No service desired or reported.', rowAttrs: (s) => ({ 'data-service': s.name, 'data-drift': s.drift }) }),
      h('h2', null, 'Last reports'),
      table([
        { title: 'Received', cell: (x) => h('time', { datetime: x.receivedAt, title: x.receivedAt }, ago(x.receivedAt)) },
        { title: 'Phase', cell: (x) => badge(x.phase, phaseKind(x.phase)) },
        { title: 'Running', cell: (x) => x.running ?? '—' },
        { title: 'Sequence', num: true, cell: (x) => String(x.desiredSequence ?? '—') },
        { title: 'Bytes', cell: (x) => (x.bytes.total ? `${bytes(x.bytes.done)} / ${bytes(x.bytes.total)}` : '—') },
        { title: 'Error', cell: (x) => h('span', { class: 'reason' }, x.error ?? '') },
      ], hist.reports, { label: 'last reports', empty: 'No report yet.' }),
    );
  }
  return { el, update };
}
