import { get, post } from './api.js';
import { ago, badge, h, pageTitle, table } from './dom.js';
import { sizeBars, waveBars } from './waves.js';

const pct = (x) => `${Math.round(x * 1000) / 10}%`;

export async function campaignListPage() {
  const body = h('div');
  const el = h('section', null, pageTitle('Campaigns'), body);
  return {
    el,
    async update() {
      const { campaigns } = await get('/v1/campaigns?limit=200');
      body.replaceChildren(table([
        { title: 'Name', cell: (c) => h('a', { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name) },
        { title: 'Manifest', cell: (c) => c.manifest },
        { title: 'Selector', cell: (c) => h('code', null, c.selector || '(all)') },
        { title: 'Status', cell: (c) => h('span', { class: `badge st-${c.status}` }, c.status) },
        { title: 'Wave', num: true, cell: (c) => String(c.currentWave) },
        { title: 'Created', cell: (c) => h('time', { datetime: c.createdAt, title: c.createdAt }, ago(c.createdAt)) },
        { title: 'Reason', cell: (c) => h('span', { class: 'reason' }, c.statusReason ?? '') },
      ], campaigns, { label: 'campaigns', empty: 'No campaign yet (berth campaign create …).' }));
    },
  };
}

/** Which operator actions a status allows (as campaigns/outcome.ts decides). */
const ACTIONS = { draft: ['start', 'abort'], running: ['pause', 'abort'], paused: ['resume', 'abort'] };

export async function campaignPage(view) {
  const id = view.params[0];
  const head = h('div');
  const buttons = h('div', { class: 'actions', role: 'group', 'aria-label': 'campaign actions' });
  const status = h('span', { role: 'status', class: 'muted' });
  const body = h('div');
  const el = h('section', null, head, h('div', { class: 'toolbar' }, buttons, status), body);
  async function act(action) {
    if (action === 'abort' && !confirm('Abort this campaign? Every device it touched goes back to its previous release.')) return;
    status.textContent = `${action}…`;
    try {
      const c = await post(`/v1/campaigns/${encodeURIComponent(id)}/${action}`);
      status.textContent = `${action}: now ${c.status}`;
      view.announce(status.textContent);
    } catch (err) {
      status.textContent = err.message;
    }
    await view.refresh();
  }
  async function update() {
    const c = await get(`/v1/campaigns/${encodeURIComponent(id)}`);
    head.replaceChildren(pageTitle(c.name, h('span', { class: `badge st-${c.status}`, 'data-status': c.status }, c.status)));
    buttons.replaceChildren(...(view.can('release-manager') ? (ACTIONS[c.status] ?? []) : []).map((a) => h('button', { type: 'button', class: a === 'abort' ? 'danger' : 'primary', 'data-action': a, onclick: () => act(a) }, a[0].toUpperCase() + a.slice(1))));
    const r = c.rules;
    const w = c.window;
    body.replaceChildren(
      h('dl', { class: 'facts' },
        h('dt', null, 'Manifest'), h('dd', null, h('a', { href: `#/manifests/${c.manifest.split('@').map(encodeURIComponent).join('/')}` }, c.manifest)),
        h('dt', null, 'Selector'), h('dd', null, h('code', null, c.selector || '(all devices)')),
        h('dt', null, 'Progress'), h('dd', null, `wave ${c.currentWave} of ${c.waves.length}${c.soakUntil ? ` · soaking until ${new Date(c.soakUntil).toLocaleTimeString()}` : ''}${c.statusReason ? ` · ${c.statusReason}` : ''}`),
        h('dt', null, 'Thresholds'), h('dd', null, `success ${pct(r.success)} · at most ${pct(r.maxFailures)} failures · device timeout ${r.deviceTimeout} · soak ${r.soak} · on failure ${r.onFailure}`),
        h('dt', null, 'Window'), h('dd', null, w ? `${w.cron} for ${w.duration} (${w.tz}) · ${w.open ? `open${w.closesAt ? ` until ${new Date(w.closesAt).toLocaleString()}` : ''}` : `closed${w.opensAt ? `, opens ${new Date(w.opensAt).toLocaleString()}` : ''}`}` : 'any time'),
        h('dt', null, 'Devices'), h('dd', null, Object.entries(c.devices).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(' · ') || 'none'),
        h('dt', null, 'Created'), h('dd', null, `${ago(c.createdAt)} by ${c.createdBy}`),
      ),
      h('h2', null, 'Waves'),
      waveBars(c),
      h('h2', null, 'Failing devices'),
      table([
        { title: 'Device', cell: (f) => h('a', { href: `#/devices/${encodeURIComponent(f.serial)}` }, f.serial) },
        { title: 'Wave', num: true, cell: (f) => String(f.wave) },
        { title: 'State', cell: (f) => badge(f.state, 'bad') },
        { title: 'When', cell: (f) => ago(f.at) },
        { title: 'Reason', cell: (f) => h('span', { class: 'reason' }, f.error ?? '') },
      ], c.failing, { label: 'failing devices', empty: 'No device has failed.' }),
    );
    sizeBars(body);
  }
  return { el, update };
}
