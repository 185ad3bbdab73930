import { get } from './api.js';
import { ago, h, pageTitle, table } from './dom.js';
import { sizeBars, waveBars } from './waves.js';

const CARDS = [
  ['online', 'Online', (d) => d.online, 'ok'],
  ['offline', 'Offline', (d) => d.offline, 'warn'],
  ['in-sync', 'In sync', (d) => d.sync['in-sync'], 'ok'],
  ['drifting', 'Drifting', (d) => d.sync.drifting, 'warn'],
  ['updating', 'Updating', (d) => d.sync.updating, 'busy'],
  ['failed', 'Failed', (d) => d.sync.failed, 'bad'],
];

export async function overviewPage() {
  const body = h('div', { class: 'stack' });
  const el = h('section', null, pageTitle('Fleet overview'), body);
  return {
    el,
    async update() {
      const f = await get('/v1/fleet/status');
      const d = f.devices;
      body.replaceChildren(
        h('div', { class: 'cards' }, CARDS.map(([key, title, n, kind]) => h('a', { class: `card ${n(d) > 0 ? kind : ''}`, href: `#/devices`, 'data-count': key },
          h('span', { class: 'n' }, String(n(d))), h('span', { class: 'k' }, title)))),
        h('p', { class: 'muted' }, `${d.total} enrolled devices · ${d.sync.unassigned} with nothing assigned · offline after ${f.offlineAfter} of silence · as of ${new Date(f.at).toLocaleTimeString()}`),
        h('h2', null, 'Active campaigns'),
        f.campaigns.active.length
          ? f.campaigns.active.map((c) => h('article', { class: 'campaign-card', 'data-campaign': c.id },
            h('header', null, h('a', { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name), ' ', h('span', { class: `badge st-${c.status}` }, c.status), h('span', { class: 'muted' }, ` ${c.manifest} · wave ${c.currentWave} of ${c.waves.length}`)),
            waveBars(c)))
          : h('p', { class: 'muted' }, 'No campaign is running, paused or waiting to start.'),
        h('h2', null, 'Recent failures'),
        table([
          { title: 'Device', cell: (r) => h('a', { href: `#/devices/${encodeURIComponent(r.serial)}` }, r.serial) },
          { title: 'Phase', cell: (r) => h('span', { class: 'badge bad' }, r.phase) },
          { title: 'Release', cell: (r) => r.release ?? '—' },
          { title: 'When', cell: (r) => h('time', { datetime: r.at, title: r.at }, ago(r.at)) },
          { title: 'Reason', cell: (r) => h('span', { class: 'reason' }, r.error ?? '—') },
        ], f.recentFailures, { label: 'recent failures', empty: 'No device reports a failure.' }),
      );
      sizeBars(body);
    },
  };
}
