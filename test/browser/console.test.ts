import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from '../integration/control-plane-support.js';
import { enrollFleet, publish, SimGateway } from '../integration/sim-gateway.js';

/**
 * The console in real headless Chromium (Debian's package, driven by playwright-core; no browser
 * is downloaded) against a real control plane with simulated gateways. Screenshots of each page
 * go to test/browser/screenshots/ (ignored by git: every run writes them anew).
 */
const CHROMIUM = process.env.BERTH_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(import.meta.dirname, 'screenshots');
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;
let browser: Browser;
let viewerToken: string;
let campaignId: string;
const gateways = ['gw-berlin-1', 'gw-berlin-2', 'gw-berlin-3', 'gw-berlin-4', 'gw-paris-1', 'gw-paris-2'].map((s) => new SimGateway(s));
const berlin = gateways.slice(0, 4);

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'berth-console-'));
  const rig = rigFromEnv();
  const v1 = await forgeImage(rig.registry, 'berth-test/console-app', 'v1', { layers: [{ files: { 'v.txt': '1\n' } }] });
  const v2 = await forgeImage(rig.registry, 'berth-test/console-app', 'v2', { layers: [{ files: { 'v.txt': '2\n' } }] });
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }), config: { lastSeenFlushMs: 100 } });
  await publish(cp.url, ADMIN, 'app', '1.0.0', v1.tagReference);
  await publish(cp.url, ADMIN, 'app', '2.0.0', v2.tagReference);
  await enrollFleet(cp.url, ADMIN, gateways, (g) => `site=${g.serial.split('-')[1]};tier=prod`);
  for (const g of gateways) {
    expect((await call(cp.url, 'POST', `/v1/devices/${g.serial}/assign`, { token: ADMIN, json: { manifest: 'app@1.0.0' } })).status).toBe(200);
    await g.runDesired(cp.url);
  }
  // One gateway failed its last release: the overview lists it with its reason.
  await gateways[5].rollBack(cp.url, 'app@1.0.0', 'web: unhealthy after 60s: connection refused');
  viewerToken = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'night-shift', role: 'viewer' } })).body.token;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

async function newPage(width = 1280, height = 900): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (m) => {
    // Refusals the test provokes (a wrong token, a bad selector) show as failed loads; they are answers, not faults.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  (page as Page & { problems: string[] }).problems = problems;
  return page;
}

const problemsOf = (page: Page) => (page as Page & { problems: string[] }).problems;
async function shot(page: Page, name: string): Promise<void> {
  // A value the page failed to format shows as a bare word (the audit page quotes JSON, nulls included).
  if (!name.includes('audit')) expect(await page.locator('main').textContent(), name).not.toMatch(/null|undefined|NaN/);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function login(page: Page, token: string): Promise<void> {
  await page.goto(`${cp.url}/ui/`);
  await page.getByLabel('Operator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#nav a').first().waitFor();
}

describe('the console in Chromium', () => {
  let page: Page;

  it('logs in and shows the fleet overview with the counts the API gives', async () => {
    page = await newPage();
    await page.goto(`${cp.url}/ui/`);
    await shot(page, '01-login');
    await page.getByLabel('Operator token').fill('berth_not-a-real-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('unknown, expired or revoked');
    await login(page, ADMIN);
    expect(await page.locator('.badge.role').textContent()).toBe('admin');
    await page.locator('[data-count="online"] .n').waitFor();
    const api = (await call(cp.url, 'GET', '/v1/fleet/status', { token: ADMIN })).body;
    const count = async (k: string) => Number(await page.locator(`[data-count="${k}"] .n`).textContent());
    expect({ online: await count('online'), offline: await count('offline'), inSync: await count('in-sync'), failed: await count('failed') }).toEqual({ online: api.devices.online, offline: api.devices.offline, inSync: api.devices.sync['in-sync'], failed: api.devices.sync.failed });
    expect(api.devices.sync['in-sync']).toBe(5);
    expect(await page.getByRole('table', { name: 'recent failures' }).textContent()).toContain('web: unhealthy after 60s');
    await shot(page, '02-overview');
    expect(problemsOf(page)).toEqual([]);
  });

  it('filters devices by selector and opens a twin with desired against reported', async () => {
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.locator('tr[data-serial]').first().waitFor();
    expect(await page.locator('tr[data-serial]').count()).toBe(6);
    await page.getByLabel('Selector').fill('site=paris');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('tr[data-serial]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial')))).toEqual(['gw-paris-1', 'gw-paris-2']);
    await shot(page, '03-devices-filtered');
    await page.getByLabel('Selector').fill('site in (berlin');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.getByRole('alert').count()).toBe(1);

    await page.goto(`${cp.url}/ui/#/devices/gw-paris-1`);
    await page.locator('[data-desired="app@1.0.0"]').waitFor();
    expect(await page.locator('[data-reported]').getAttribute('data-reported')).toBe('app@1.0.0');
    expect(await page.locator('tr[data-service="web"]').getAttribute('data-drift')).toBe('in-sync');
    expect(await page.getByLabel('Assign release').count()).toBe(1);

    // The logs panel: the request goes to the gateway (simulated here, over the real device routes) and its lines come back.
    await page.getByRole('button', { name: 'Show logs' }).click();
    const paris = gateways[4];
    await expect.poll(() => paris.serveLogs(cp.url, ['collector started', 'reading sensor 7: 21.5 C']), { timeout: 30_000 }).toBe(1);
    await expect.poll(() => page.getByLabel('log lines').textContent()).toContain('web | reading sensor 7: 21.5 C');
    await shot(page, '04-twin');
  });

  it('moves a campaign’s wave bars as devices report, without reloading, and pauses it', async () => {
    const created = await call(cp.url, 'POST', '/v1/campaigns', { token: ADMIN, json: { manifest: 'app@2.0.0', selector: 'site=berlin', waves: ['1', '50%', '100%'], success: 1, soak: '0', name: 'berlin 2.0', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    campaignId = created.body.id;
    await page.goto(`${cp.url}/ui/#/campaigns/${campaignId}`);
    const wave = (n: number) => page.locator(`.wave[data-wave="${n}"]`);
    await expect.poll(() => wave(1).getAttribute('data-assigned')).toBe('1');
    // Page code runs in the browser: given as text (the test's TypeScript has no DOM types).
    await page.evaluate('window.marker = 42');

    // The gateway given 2.0.0 runs it: its wave fills and the next one starts, live. Only that one:
    // its report advances the campaign, and a gateway of the next wave read after that would run
    // too and empty that wave before the page could show it (seen in CI).
    const firstWave: SimGateway[] = [];
    for (const g of berlin) if ((await g.desired(cp.url))?.release === 'app@2.0.0') firstWave.push(g);
    expect(firstWave).toHaveLength(1);
    for (const g of firstWave) await g.runDesired(cp.url);
    await expect.poll(() => wave(1).getAttribute('data-succeeded'), { timeout: 30_000 }).toBe('1');
    await expect.poll(() => wave(2).getAttribute('data-assigned'), { timeout: 30_000 }).toBe('1');
    expect(await page.evaluate('window.marker')).toBe(42);
    await shot(page, '05-campaign-running');

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('[data-status="paused"]').waitFor();
    expect((await call(cp.url, 'GET', `/v1/campaigns/${campaignId}`, { token: ADMIN })).body.status).toBe('paused');
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(1);
    await shot(page, '06-campaign-paused');
  });

  it('shows manifests, a diff and the audit log newest first, filtered', async () => {
    await page.goto(`${cp.url}/ui/#/manifests`);
    await page.getByRole('link', { name: '2.0.0' }).click();
    await page.getByRole('heading', { name: 'app@2.0.0' }).waitFor();
    expect(await page.locator('.facts').textContent()).toContain('sha256:');
    await shot(page, '07-manifest');
    await page.goto(`${cp.url}/ui/#/diff/app?from=1.0.0&to=2.0.0`);
    await page.getByRole('table', { name: 'differences' }).waitFor();
    expect(await page.getByRole('table', { name: 'differences' }).textContent()).toContain('image');
    await shot(page, '08-diff');
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('Action').fill('campaign.');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('tr[data-action]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')))).toEqual(['campaign.pause', 'campaign.start', 'campaign.create']);
    await shot(page, '09-audit');
    expect(problemsOf(page)).toEqual([]);
  });

  it('gives a viewer no button that would fail, takes the token from the fragment, and logs out', async () => {
    const viewer = await newPage();
    await viewer.goto(`${cp.url}/ui/#token=${viewerToken}`);
    await viewer.locator('.badge.role').waitFor();
    expect(await viewer.locator('.badge.role').textContent()).toBe('viewer');
    expect(viewer.url()).not.toContain(viewerToken);
    expect(await viewer.evaluate("sessionStorage.getItem('berth.token')")).toBe(viewerToken);
    expect(await viewer.locator('#nav a').allTextContents()).toEqual(['Overview', 'Devices', 'Campaigns', 'Manifests']);
    await viewer.goto(`${cp.url}/ui/#/campaigns/${campaignId}`);
    await viewer.locator('[data-status="paused"]').waitFor();
    expect(await viewer.locator('button[data-action]').count()).toBe(0);
    await viewer.goto(`${cp.url}/ui/#/devices/gw-berlin-1`);
    await viewer.locator('[data-desired]').waitFor();
    expect(await viewer.getByLabel('Assign release').count()).toBe(0);
    expect(await viewer.getByRole('button', { name: 'Show logs' }).count()).toBe(0);
    await shot(viewer, '10-viewer-twin');
    await viewer.getByRole('button', { name: 'Log out' }).click();
    await viewer.getByLabel('Operator token').waitFor();
    expect(await viewer.evaluate("sessionStorage.getItem('berth.token')")).toBeNull();
    expect(problemsOf(viewer)).toEqual([]);
  });

  it('fits a phone', async () => {
    const phone = await newPage(390, 844);
    await phone.goto(`${cp.url}/ui/#token=${ADMIN}`);
    await phone.locator('[data-count="online"]').waitFor();
    const overflow = await phone.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(phone, '11-overview-phone');
  });
});
