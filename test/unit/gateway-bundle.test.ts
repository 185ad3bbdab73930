import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GATEWAY_BUNDLE, GATEWAY_DIR, GATEWAY_INPUTS, gatewayBundleState } from '../../bin/gateway-bundle.js';
import { bundleGateway } from '../../scripts/bundle-gateway.js';

// The compiled tree `npm test` builds first (npm run build: tsc, then the bundle).
const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'berth-gateway-bundle-'));
const outUrl = pathToFileURL(out + '/');
// The bundle requires pino and zstd-napi from next to its dist/, as a gateway's install has them.
symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(out, 'node_modules'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('gateway bundle (issue 11)', () => {
  it('bundles the compiled daemon into an entry and its chunks, exporting its entry, with zod in English only', async () => {
    mkdirSync(join(out, GATEWAY_DIR), { recursive: true });
    writeFileSync(join(out, GATEWAY_DIR, 'chunk-OLDBUILD.js'), '');
    const files = await bundleGateway(dist, out);
    expect(files).toBeGreaterThan(100);
    const scripts = readdirSync(join(out, GATEWAY_DIR)).filter((f) => f.endsWith('.js'));
    expect(scripts).toContain('index.js');
    expect(scripts).not.toContain('chunk-OLDBUILD.js');
    const text = scripts.map((f) => readFileSync(join(out, GATEWAY_DIR, f), 'utf8')).join('\n');
    expect(text).toContain('Invalid input: expected');
    expect(text).not.toContain('Ungültige Eingabe');
    // Built-ins and the external packages through require, never an ES module facade (Seventh pass).
    expect(text).toContain('__gatewayRequire("node:crypto")');
    // Its logger is edge-daemon/gateway-log.js, not pino (Ninth pass).
    expect(text).not.toMatch(/pino/i);
    expect(text.match(/\b(?:from|import)\s*"(?:node:[\w/]+|[a-z@][\w@/.-]*)"/g)?.filter((i) => !i.endsWith('"node:module"'))).toEqual([]);
    const inputs = (JSON.parse(readFileSync(join(out, GATEWAY_INPUTS), 'utf8')) as { inputs: string[] }).inputs;
    expect(inputs.some((p) => p.endsWith('edge-daemon/daemon.js'))).toBe(true);
    expect(inputs.some((p) => p.endsWith('/edge-daemon/gateway-log.js'))).toBe(true);
    expect(inputs.filter((p) => p.endsWith('/common/log.js'))).toEqual([]);
    expect(gatewayBundleState(outUrl)).toEqual({ use: 'bundle' });
    const mod = (await import(pathToFileURL(join(out, GATEWAY_BUNDLE)).href)) as Record<string, unknown>;
    expect(typeof mod.main).toBe('function');
    expect(typeof mod.startEdgeDaemon).toBe('function');
  });

  it('is stale once any input is newer than the bundle: the daemon then runs the compiled modules', () => {
    const input = join(out, 'newer.js');
    writeFileSync(input, '');
    const later = new Date(Date.now() + 60_000);
    utimesSync(input, later, later);
    writeFileSync(join(out, GATEWAY_INPUTS), JSON.stringify({ inputs: ['gone.js', 'newer.js'] }));
    expect(gatewayBundleState(outUrl)).toEqual({ use: 'modules', why: 'the gateway bundle is older than newer.js (npm run build rewrites it)' });
  });

  it('is absent from a dist/ without one', () => {
    const state = gatewayBundleState(pathToFileURL(join(out, 'nothing') + '/'));
    expect(state.use).toBe('modules');
    expect(state.use === 'modules' && state.why).toMatch(/^no gateway bundle at .*edge-daemon\/gateway\/index\.js/);
  });

  it('is what `berth edge-daemon` of the built dist/ runs', () => {
    const r = spawnSync(process.execPath, [join(dist, 'bin/berth.js'), 'edge-daemon', '--help'], { encoding: 'utf8' });
    expect(r.stdout).toContain('usage: berth edge-daemon');
    expect(r.stderr).not.toContain('running the compiled modules');
  });

  it("logs pino's JSON lines on stdout through the gateway's logger", () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-gateway-log-'));
    try {
      const missing = join(dir, 'device.key');
      const args = ['edge-daemon', '--control-plane', 'http://127.0.0.1:9', '--state-dir', join(dir, 'state'), '--serial', 'GW-LOG', '--key', missing, '--docker-host', `unix://${join(dir, 'docker.sock')}`];
      const r = spawnSync(process.execPath, [join(dist, 'bin/berth.js'), ...args], { encoding: 'utf8', env: { ...process.env, BERTH_LOG_LEVEL: 'info' } });
      expect(r.status).toBe(1);
      expect(r.stderr).not.toContain('running the compiled modules');
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 50, component: 'edge-daemon', err: { type: 'Error', code: 'ENOENT', path: missing }, msg: 'edge-daemon did not start' });
      expect(Object.keys(lines[0])).toEqual(['level', 'time', 'component', 'err', 'msg']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
