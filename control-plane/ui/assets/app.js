// The console: one page, hash routes, every page read from the operator API and read again when
// the change stream says something changed. No framework and no build step (see ../README.md).
import { ApiError, changes, clearToken, get, setToken, takeTokenFromFragment, token } from './api.js';
import { errorBox, h } from './dom.js';
import { overviewPage } from './page-overview.js';
import { deviceListPage, twinPage } from './page-devices.js';
import { campaignListPage, campaignPage } from './page-campaigns.js';
import { manifestDiffPage, manifestListPage, manifestPage } from './page-manifests.js';
import { auditPage } from './page-audit.js';

const RANK = { viewer: 1, 'release-manager': 2, admin: 3 };

const ROUTES = [
  [/^\/?$/, overviewPage, 'overview'],
  [/^\/devices$/, deviceListPage, 'devices'],
  [/^\/devices\/([^/]+)$/, twinPage, 'devices'],
  [/^\/campaigns$/, campaignListPage, 'campaigns'],
  [/^\/campaigns\/([^/]+)$/, campaignPage, 'campaigns'],
  [/^\/manifests$/, manifestListPage, 'manifests'],
  [/^\/manifests\/([^/]+)\/([^/]+)$/, manifestPage, 'manifests'],
  [/^\/diff\/([^/]+)$/, manifestDiffPage, 'manifests'],
  [/^\/audit$/, auditPage, 'audit', 'admin'],
];

const NAV = [['overview', '#/', 'Overview'], ['devices', '#/devices', 'Devices'], ['campaigns', '#/campaigns', 'Campaigns'], ['manifests', '#/manifests', 'Manifests'], ['audit', '#/audit', 'Audit', 'admin']];

let session = null;
let current = null;
let stream = null;
let updating = null;
let again = false;

const main = () => document.getElementById('main');

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, q] = raw.split('?');
  return { path, query: new URLSearchParams(q ?? '') };
}

export function can(role) {
  return session !== null && RANK[session.role] >= RANK[role];
}

function announce(text) {
  document.getElementById('live').textContent = text;
}

function loginForm(message) {
  document.getElementById('top').hidden = true;
  document.title = 'Sign in · Berth';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'berth_…' });
  const form = h('form', { class: 'login', onsubmit: (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    start();
  } },
  h('h1', null, 'Berth console'),
  h('label', { for: 'token' }, 'Operator token'),
  input,
  h('p', { class: 'hint' }, 'Paste a token made with berth tokens create. It is kept in this tab only (sessionStorage) and sent to this control plane alone.'),
  message ? h('p', { class: 'error', role: 'alert' }, message) : null,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  main().replaceChildren(form);
  input.focus();
}

function logout() {
  stream?.stop();
  stream = null;
  session = null;
  clearToken();
  location.hash = '#/';
  loginForm('Logged out.');
}

function renderNav(active) {
  document.getElementById('nav').replaceChildren(...NAV.filter((n) => !n[3] || can(n[3])).map(([key, href, text]) => h('a', { href, 'aria-current': key === active ? 'page' : null }, text)));
}

async function show() {
  const { path, query } = parseHash();
  const hit = ROUTES.map(([re, page, nav, role]) => ({ m: re.exec(path), page, nav, role })).find((r) => r.m);
  if (!hit || (hit.role && !can(hit.role))) {
    current = null;
    main().replaceChildren(h('h1', null, 'Not found'), h('p', null, hit ? 'This page needs the admin role.' : `No page ${path}.`), h('a', { href: '#/' }, 'Overview'));
    return;
  }
  renderNav(hit.nav);
  const params = hit.m.slice(1).map(decodeURIComponent);
  const view = { params, query, can, navigate: (hash) => (location.hash = hash), refresh: () => refresh(), announce };
  try {
    current = await hit.page(view);
    main().replaceChildren(current.el);
    await refresh();
  } catch (err) {
    handle(err);
  }
}

/** Reads the page's data again; a change arriving meanwhile runs it once more afterwards. */
async function refresh() {
  if (!current?.update) return;
  if (updating) { again = true; return updating; }
  const page = current;
  updating = (async () => {
    try {
      await page.update();
    } catch (err) {
      handle(err);
    } finally {
      updating = null;
    }
    if (again) { again = false; await refresh(); }
  })();
  return updating;
}

function handle(err) {
  if (err instanceof ApiError && err.status === 401) { clearToken(); loginForm('The token is unknown, expired or revoked. Sign in again.'); return; }
  main().prepend(errorBox(err));
}

async function start() {
  if (!token()) { loginForm(); return; }
  try {
    session = await get('/v1/console/session');
  } catch (err) {
    clearToken();
    loginForm(err instanceof ApiError && err.status === 401 ? 'That token is unknown, expired or revoked.' : `Cannot reach the control plane: ${err.message}`);
    return;
  }
  document.getElementById('top').hidden = false;
  document.getElementById('who').replaceChildren(h('span', { class: 'muted' }, session.name), ' ', h('span', { class: 'badge role', 'data-role': session.role }, session.role));
  document.body.dataset.role = session.role;
  stream?.stop();
  stream = changes(() => refresh(), (state) => {
    document.body.dataset.stream = state;
    if (state === 'unauthorized') { clearToken(); loginForm('The token was revoked or expired.'); }
  });
  await show();
}

window.addEventListener('hashchange', () => { if (session) show(); });
document.getElementById('logout').addEventListener('click', logout);
takeTokenFromFragment();
start();
