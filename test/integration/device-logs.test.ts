import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { Fleet, waitFor } from './fleet.js';

/**
 * `berth logs` against a real gateway: an edge daemon running a real container in the rig's
 * Docker engine. The request reaches the gateway in its own long poll; the lines come back
 * through the control plane, which keeps none of them.
 */
const rig = rigFromEnv();
const SERIAL = 'logs-gw-1';
let dir: string;
let fleet: Fleet;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-logs-'));
  const script = ['#!/bin/sh', 'echo "ticker starting"', 'echo "ticker: a warning on stderr" >&2', 'i=0', 'while true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done', ''].join('\n');
  await forgeImage(rig.registry, 'berth-test/ticker', '1.0.0', { layers: [busyboxLayer(), { files: { '/app/run.sh': { content: script, mode: 0o755 } } }], config: { Cmd: ['/app/run.sh'] } });
  fleet = await Fleet.start({ engine: rig, dir, gateways: [{ serial: SERIAL, labels: { site: 'logs' } }] });
  await fleet.cliJson(['devices', 'import', fleet.recordsFile]);
  await fleet.startGateway(SERIAL);
  const manifest = join(dir, 'ticker.yaml');
  await writeFile(manifest, `name: ticker\nversion: 1.0.0\nservices:\n  app:\n    image: ${rig.registry}/berth-test/ticker:1.0.0\n    network_mode: none\n`);
  const applied = await fleet.cli(['apply', '-f', manifest]);
  expect(applied.code, applied.stderr).toBe(0);
  expect((await call(fleet.controlPlaneUrl, 'POST', `/v1/devices/${SERIAL}/assign`, { token: fleet.adminToken, json: { manifest: 'ticker@1.0.0' } })).status).toBe(200);
  await fleet.waitForRelease([SERIAL], 'ticker@1.0.0');
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
});

const tickOf = (line: string) => Number(/tick (\d+)/.exec(line)?.[1] ?? NaN);

describe('device logs on demand', () => {
  it('returns a container’s real lines, stdout and stderr, with --tail and a service', async () => {
    // The container has printed a few ticks by now.
    await waitFor('a few ticks', async () => {
      const r = await fleet.cli(['logs', SERIAL, 'app', '--tail', '100']);
      return r.stdout.includes('tick 3') ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const all = await fleet.cli(['logs', SERIAL, '--since', '10m']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain('app | ticker starting');
    expect(all.stdout).toContain('app | ticker: a warning on stderr');
    const json = await fleet.cli(['logs', SERIAL, 'app', '--tail', '2', '-o', 'json']);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ service: 'app', stream: 'stdout', line: expect.stringMatching(/^tick \d+$/) });
    const none = await fleet.cli(['logs', SERIAL, 'nosuch']);
    expect(none.stdout).toContain('no container of service nosuch');

    const actions = (await call(fleet.controlPlaneUrl, 'GET', '/v1/audit', { token: fleet.adminToken })).body.entries.filter((e: any) => e.action === 'device.logs');
    expect(actions.length).toBeGreaterThanOrEqual(3);
    expect(actions[0]).toMatchObject({ target: SERIAL });
  });

  it('refuses a viewer (explicit rule: logs are for release managers and admins) and bad flags', async () => {
    const viewer = (await call(fleet.controlPlaneUrl, 'POST', '/v1/tokens', { token: fleet.adminToken, json: { name: 'v', role: 'viewer' } })).body.token;
    const r = await fleet.cli(['logs', SERIAL], { token: viewer });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('403');
    expect((await fleet.cli(['logs', SERIAL, '--since', 'yesterday'])).code).toBe(2);
    expect((await fleet.cli(['logs', 'no-such-gateway'])).stderr).toContain('404');
  });

  it('--save writes the lines it prints to a new 0600 file as NDJSON, and refuses a file that exists', async () => {
    const file = join(dir, 'saved.ndjson');
    const r = await fleet.cli(['logs', SERIAL, 'app', '--tail', '3', '--save', file]);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(saved).toHaveLength(3);
    for (const entry of saved) expect(Object.keys(entry).sort()).toEqual(['line', 'service', 'stream']);
    expect(saved[2]).toMatchObject({ service: 'app', stream: 'stdout', line: expect.stringMatching(/^tick \d+$/) });
    // The file holds exactly what was printed.
    expect(saved.map((e) => `${e.service} | ${e.line}`)).toEqual(r.stdout.trimEnd().split('\n'));

    const before = await readFile(file, 'utf8');
    const again = await fleet.cli(['logs', SERIAL, 'app', '--tail', '3', '--save', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--save ${file}: the file exists`);
    expect(await readFile(file, 'utf8')).toBe(before);

    // A refused request leaves no empty file behind.
    const refused = join(dir, 'refused.ndjson');
    expect((await fleet.cli(['logs', 'no-such-gateway', '--save', refused])).stderr).toContain('404');
    await expect(stat(refused)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('follows new lines with -f, and frees the request when the operator leaves', async () => {
    const seen: Array<{ line: string; at: number }> = [];
    const started = Date.now();
    const following = fleet.cli(['logs', SERIAL, 'app', '--tail', '1', '-f'], { echo: (line) => seen.push({ line, at: Date.now() }) });
    await waitFor('the tail line', async () => (seen.length ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
    const first = tickOf(seen[0].line);
    await waitFor('a new line', async () => (seen.some((s) => tickOf(s.line) > first) ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
    const fresh = seen.find((s) => tickOf(s.line) > first) as { at: number };
    // Measured, not asserted (speed targets live in the benchmarks): how soon a new line arrived.
    console.log(`berth logs -f: first line after ${seen[0].at - started} ms, a new line ${fresh.at - seen[0].at} ms after it`);
    process.emit('SIGINT');
    expect((await following).code).toBe(0);

    // Each request was freed when its operator left: more than the per-device limit, one after another, all served.
    for (let i = 0; i < 4; i++) {
      const ctrl = new AbortController();
      const res = await fetch(`${fleet.controlPlaneUrl}/v1/devices/${SERIAL}/logs?follow=true&tail=1`, { headers: { authorization: `Bearer ${fleet.adminToken}` }, signal: ctrl.signal });
      expect(res.status).toBe(200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      ctrl.abort();
      await reader.closed.catch(() => undefined);
    }
  });
});
