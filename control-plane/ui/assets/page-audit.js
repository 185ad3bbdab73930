import { get } from './api.js';
import { h, pageTitle, table } from './dom.js';

export async function auditPage(view) {
  const actor = view.query.get('actor') ?? '';
  const action = view.query.get('action') ?? '';
  const befores = [undefined];
  let index = 0;
  const input = (id, label, value, ph) => [h('label', { for: id }, label), h('input', { id, name: id, value, placeholder: ph, spellcheck: 'false', autocomplete: 'off' })];
  const form = h('form', { class: 'filter', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    view.navigate(`#/audit?actor=${encodeURIComponent(form.actor.value.trim())}&action=${encodeURIComponent(form.action.value.trim())}`);
  } }, input('actor', 'Actor', actor, 'operator:tok_…'), input('action', 'Action', action, 'campaign.'), h('button', { type: 'submit' }, 'Filter'));
  const body = h('div');
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages' });
  const el = h('section', null, pageTitle('Audit log'), form, body, pager);
  async function update() {
    const q = new URLSearchParams({ limit: '50' });
    if (actor) q.set('actor', actor);
    if (action) q.set('action', action);
    if (befores[index]) q.set('before', String(befores[index]));
    const page = await get(`/v1/console/audit?${q}`);
    befores[index + 1] = page.next ?? undefined;
    const brief = (v) => (v === null || v === undefined ? '' : JSON.stringify(v));
    body.replaceChildren(table([
      { title: 'When', cell: (e) => h('time', { datetime: e.at }, e.at.replace('T', ' ').slice(0, 19)) },
      { title: 'Actor', cell: (e) => e.actor },
      { title: 'Action', cell: (e) => h('code', null, e.action) },
      { title: 'Target', cell: (e) => e.target },
      { title: 'Change', cell: (e) => h('span', { class: 'reason' }, [brief(e.before), e.before !== null && e.after !== null ? ' → ' : '', brief(e.after)].join('')) },
    ], page.entries, { label: 'audit entries', empty: 'No entry matches.', rowAttrs: (e) => ({ 'data-action': e.action }) }));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: index === 0, onclick: () => { index--; update(); } }, '← Newer'),
      h('span', { class: 'muted' }, ` page ${index + 1} `),
      h('button', { type: 'button', disabled: !page.next, onclick: () => { index++; update(); } }, 'Older →'),
    );
  }
  return { el, update };
}
