import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GATEWAY_BUNDLE, GATEWAY_DIR, GATEWAY_ENTRY, GATEWAY_INPUTS, gatewayBundleState, loadScript } from '../../bin/gateway-bundle.js';
import { bundleGateway } from '../../scripts/bundle-gateway.js';

// The compiled tree `npm test` builds first (npm run build: tsc, then the bundle).
const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'berth-gateway-bundle-'));
const outUrl = pathToFileURL(out + '/');
// The bundle requires pino and zstd-napi from next to its dist/, as a gateway's install has them.
symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(out, 'node_modules'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('gateway bundle (issue 11)', () => {
  it('bundles the compiled daemon into one CommonJS script and its entry, exporting main, with zod in English only', () => {
    mkdirSync(join(out, GATEWAY_DIR), { recursive: true });
    writeFileSync(join(out, GATEWAY_DIR, 'chunk-OLDBUILD.js'), '');
    return bundleGateway(dist, out).then((files) => {
      expect(files).toBeGreaterThan(100);
      expect(readdirSync(join(out, GATEWAY_DIR)).sort()).toEqual(['daemon.cjs', 'daemon.cjs.map', 'inputs.json']);
      const text = readFileSync(join(out, GATEWAY_BUNDLE), 'utf8');
      expect(text).toContain('Invalid input: expected');
      expect(text).not.toContain('Ungültige Eingabe');
      // Its logger is edge-daemon/gateway-log.js, not pino (Ninth pass).
      expect(text).not.toMatch(/pino/i);
      // CommonJS through and through: no `import` a Node would need its ES module loader for.
      expect(text.match(/\bimport\s*\(|\bimport\s*[{*\w][^;]*\bfrom\s*["']|import\.meta/g)).toBeNull();
      expect(text).toContain('require("node:crypto")');
      // node:fs/promises is edge-daemon/gateway-fs.js in the bundle (Tenth pass).
      expect(text).not.toContain('fs/promises');
      const inputs = (JSON.parse(readFileSync(join(out, GATEWAY_INPUTS), 'utf8')) as { inputs: string[] }).inputs;
      expect(inputs.some((p) => p.endsWith('edge-daemon/daemon.js'))).toBe(true);
      expect(inputs.some((p) => p.endsWith('/edge-daemon/gateway-log.js'))).toBe(true);
      expect(inputs.some((p) => p.endsWith('/edge-daemon/gateway-fs.js'))).toBe(true);
      expect(inputs.some((p) => p.endsWith('/bin/gateway-entry.js'))).toBe(true);
      expect(inputs.filter((p) => p.endsWith('/common/log.js'))).toEqual([]);
      expect(gatewayBundleState(outUrl)).toEqual({ use: 'bundle' });
      const mod = loadScript(join(out, GATEWAY_BUNDLE), createRequire(join(out, GATEWAY_BUNDLE))) as Record<string, unknown>;
      expect(typeof mod.main).toBe('function');
      expect(typeof mod.startEdgeDaemon).toBe('function');
      expect(readFileSync(join(out, GATEWAY_ENTRY), 'utf8')).toContain('daemon.cjs');
    });
  });

  it('refuses to read a script that is not ASCII, naming it and where', () => {
    const file = join(out, 'not-ascii.cjs');
    writeFileSync(file, `module.exports = ${JSON.stringify('x'.repeat(70_000))} + 'é';\n`);
    expect(() => loadScript(file, createRequire(file))).toThrow(`${file}: not ASCII within bytes 65536-`);
    writeFileSync(file, `module.exports = { n: ${JSON.stringify('y'.repeat(70_000))}.length, dir: __dirname };\n`);
    expect(loadScript(file, createRequire(file))).toEqual({ n: 70_000, dir: out });
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
    expect(state.use === 'modules' && state.why).toMatch(/^no gateway bundle at .*edge-daemon\/gateway\/daemon\.cjs/);
  });

  it('is what `berth edge-daemon` and the gateway entry of the built dist/ run', () => {
    for (const command of [[join(dist, 'bin/berth.js'), 'edge-daemon'], [join(dist, GATEWAY_ENTRY)]]) {
      const r = spawnSync(process.execPath, [...command, '--help'], { encoding: 'utf8' });
      expect(r.stdout, command.join(' ')).toContain('usage: berth edge-daemon');
      expect(r.stderr).not.toContain('running the compiled modules');
    }
  });

  it("runs without Node's ES module loader and logs pino's JSON lines on stdout through the gateway's logger", () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-gateway-log-'));
    try {
      const missing = join(dir, 'device.key');
      const args = ['edge-daemon', '--control-plane', 'http://127.0.0.1:9', '--state-dir', join(dir, 'state'), '--serial', 'GW-LOG', '--key', missing, '--docker-host', `unix://${join(dir, 'docker.sock')}`];
      // The entry as a gateway runs it, with a preload that names the ES module loader's parts once loaded.
      const preload = join(dir, 'loaded.cjs');
      writeFileSync(preload, "process.on('exit', () => process.stderr.write('LOADED ' + process.moduleLoadList.filter((m) => /modules\\/esm\\/|fs\\/promises|readline/.test(m)).join(',') + '\\n'));\n");
      const r = spawnSync(process.execPath, ['--require', preload, join(dist, GATEWAY_ENTRY), ...args.slice(1)], { encoding: 'utf8', env: { ...process.env, BERTH_LOG_LEVEL: 'info' } });
      expect(r.status).toBe(1);
      expect(r.stderr).not.toContain('running the compiled modules');
      // Only the part Node's start-up loads whatever the entry: no resolver, loader, module jobs or
      // translators; and neither node:fs/promises nor the readline it brings (gateway-fs.js instead).
      expect(r.stderr).toContain('LOADED NativeModule internal/modules/esm/utils\n');
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 50, component: 'edge-daemon', err: { type: 'Error', code: 'ENOENT', path: missing }, msg: 'edge-daemon did not start' });
      expect(Object.keys(lines[0])).toEqual(['level', 'time', 'component', 'err', 'msg']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
