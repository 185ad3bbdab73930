import { get } from './api.js';
import { ago, h, pageTitle, table } from './dom.js';

export async function manifestListPage() {
  const body = h('div');
  const el = h('section', null, pageTitle('Manifests'), body);
  return {
    el,
    async update() {
      const { manifests } = await get('/v1/manifests');
      body.replaceChildren(table([
        { title: 'Name', cell: (m) => m.name },
        { title: 'Version', cell: (m) => h('a', { href: `#/manifests/${encodeURIComponent(m.name)}/${encodeURIComponent(m.version)}` }, m.version) },
        { title: 'Digest', cell: (m) => h('code', { title: m.digest }, m.digest.slice(0, 19)) },
        { title: 'Published', cell: (m) => h('time', { datetime: m.publishedAt, title: m.publishedAt }, `${ago(m.publishedAt)} by ${m.publishedBy}`) },
        { title: 'Compare', cell: (m) => h('a', { href: `#/diff/${encodeURIComponent(m.name)}?to=${encodeURIComponent(m.version)}` }, 'diff…') },
      ], manifests, { label: 'manifests', empty: 'No manifest published yet (berth apply -f …).' }));
    },
  };
}

export async function manifestPage(view) {
  const [name, version] = view.params;
  const m = await get(`/v1/manifests/${encodeURIComponent(name)}/${encodeURIComponent(version)}`);
  const el = h('section', null,
    pageTitle(`${m.name}@${m.version}`, h('a', { href: `#/diff/${encodeURIComponent(name)}?to=${encodeURIComponent(version)}` }, 'Compare with another version')),
    h('dl', { class: 'facts' },
      h('dt', null, 'Digest'), h('dd', null, h('code', null, m.digest)),
      h('dt', null, 'Published'), h('dd', null, `${m.publishedAt} by ${m.publishedBy}`)),
    h('h2', null, 'Services (pinned)'),
    table([
      { title: 'Service', cell: (s) => s.name },
      { title: 'Image', cell: (s) => h('code', { class: 'wrap' }, s.image) },
    ], Object.entries(m.spec.services).map(([n, s]) => ({ name: n, image: s.image })), { label: 'services' }),
    h('h2', null, 'Privileges'),
    table([
      { title: 'Privilege', cell: (p) => h('code', null, `${p.key}=${p.value}`) },
      { title: 'Services', cell: (p) => p.services.join(', ') },
    ], m.privileges, { label: 'privileges', empty: 'None: a plain manifest, no policy needed.' }),
    h('h2', null, 'Source'),
    h('pre', { class: 'source', tabindex: '0', 'aria-label': 'manifest source' }, m.source));
  return { el };
}

export async function manifestDiffPage(view) {
  const name = view.params[0];
  const versions = (await get(`/v1/manifests?name=${encodeURIComponent(name)}`)).manifests.map((m) => m.version);
  const to = view.query.get('to') ?? versions[versions.length - 1];
  const from = view.query.get('from') ?? versions[Math.max(0, versions.indexOf(to) - 1)];
  const pick = (id, label, value) => [h('label', { for: id }, label), h('select', { id, name: id }, versions.map((v) => h('option', { value: v, selected: v === value }, v)))];
  const form = h('form', { class: 'filter', onsubmit: (e) => {
    e.preventDefault();
    view.navigate(`#/diff/${encodeURIComponent(name)}?from=${encodeURIComponent(form.from.value)}&to=${encodeURIComponent(form.to.value)}`);
  } }, pick('from', 'From', from), pick('to', 'To', to), h('button', { type: 'submit' }, 'Compare'));
  const d = from && to ? await get(`/v1/manifests/${encodeURIComponent(name)}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`) : null;
  const fmt = (v) => (v === undefined || v === null ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
  const rows = d ? [
    ...d.services.flatMap((s) => [
      ...(s.image ? [{ where: s.service, change: s.change, field: 'image', from: s.image.from, to: s.image.to }] : []),
      ...s.fields.map((f) => ({ where: s.service, change: s.change, ...f })),
      ...(!s.image && !s.fields.length ? [{ where: s.service, change: s.change, field: '', from: '', to: '' }] : []),
    ]),
    ...d.settings.map((f) => ({ where: '(settings)', change: 'changed', ...f })),
  ] : [];
  const el = h('section', null, pageTitle(`Diff of ${name}`), form,
    table([
      { title: 'Service', cell: (r) => r.where },
      { title: 'Change', cell: (r) => r.change },
      { title: 'Field', cell: (r) => r.field },
      { title: `From ${from ?? ''}`, cell: (r) => h('code', { class: 'wrap del' }, fmt(r.from)) },
      { title: `To ${to ?? ''}`, cell: (r) => h('code', { class: 'wrap add' }, fmt(r.to)) },
    ], rows, { label: 'differences', empty: from === to ? 'Pick two different versions.' : 'No difference.' }));
  return { el };
}
