// A tiny DOM builder: text always goes in as text (never HTML), so nothing a device or an
// operator wrote can run in the console.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function table(columns, rows, opts = {}) {
  return h('div', { class: 'scroll' },
    h('table', { class: 'grid', 'aria-label': opts.label },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.title)))),
      h('tbody', null, rows.length ? rows.map((r) => h('tr', opts.rowAttrs?.(r) ?? null, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r))))) : h('tr', null, h('td', { colspan: columns.length, class: 'muted' }, opts.empty ?? 'nothing here')))));
}

export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function bytes(n) {
  if (!n) return '0 B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const i = Math.min(u.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return `${(n / 1024 ** i).toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function labels(obj) {
  const entries = Object.entries(obj ?? {});
  return entries.length ? entries.map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`)) : h('span', { class: 'muted' }, '—');
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind ?? ''}` }, text);
}

export function shortDigest(d) {
  if (!d) return '—';
  const i = d.lastIndexOf('@');
  const digest = i >= 0 ? d.slice(i + 1) : d;
  return digest.startsWith('sha256:') ? `${i >= 0 ? d.slice(0, i) + '@' : ''}sha256:${digest.slice(7, 19)}` : d;
}

export function pageTitle(text, ...extra) {
  document.title = `${text} · Berth`;
  return h('div', { class: 'titlebar' }, h('h1', null, text), ...extra);
}

export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err?.message ?? String(err));
}
