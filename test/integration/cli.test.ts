import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCaptured } from './cli-support.js';
import { CAMPAIGN_DEFAULTS } from '../../protocol/campaign-spec.js';
import type { AuditEntry, Campaign, DeviceSummary, ManifestDetail, ManifestDiff, ManifestInfo, PublishResult, TokenInfo, Twin } from '../../cli/client.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { bashComplete, berthOnPath } from './bash-completion.js';
import { DEMO_REPOSITORY, Fleet, forgeDemoImages, writeDemoManifest, type DemoImages } from './fleet.js';

/**
 * The operator CLI against a real control plane (libSQL file, real HTTP) whose manifests are
 * pinned through the real registry proxy from the rig's registry. No gateway runs here: the
 * rollouts themselves are the end-to-end test's story.
 */
const rig = rigFromEnv();
let dir: string;
let fleet: Fleet;
let images: DemoImages;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cli-it-'));
  images = await forgeDemoImages(rig.registry);
  fleet = await Fleet.start({
    engine: rig,
    dir,
    gateways: [
      { serial: 'gw-a', labels: { site: 'berlin' } },
      { serial: 'gw-b', labels: { site: 'paris' } },
    ],
  });
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
});

describe('berth CLI against a real control plane', () => {
  it('logs in with the token on stdin and stores it 0600; later commands need no flags', async () => {
    const env = { XDG_CONFIG_HOME: join(dir, 'login-config'), HOME: dir };
    const login = await runCaptured(['login', '--server', fleet.controlPlaneUrl], env, { stdin: fleet.adminToken + '\n' });
    expect(login.code).toBe(0);
    const file = join(dir, 'login-config', 'berth', 'config.json');
    expect(login.stdout).toContain(`logged in to ${fleet.controlPlaneUrl}`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const after = await runCaptured(['manifests', 'list', '--output', 'json'], env);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual([]);

    const bad = await runCaptured(['login', '--server', fleet.controlPlaneUrl], { XDG_CONFIG_HOME: join(dir, 'bad-config'), HOME: dir }, { stdin: 'berth_not-a-token\n' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/401 invalid-token/);
    await expect(stat(join(dir, 'bad-config', 'berth', 'config.json'))).rejects.toThrow(/ENOENT/);
  });

  it('warns that a token given as a flag is visible', async () => {
    const flagged = await runCaptured(['manifests', 'list', '--server', fleet.controlPlaneUrl, '--token', fleet.adminToken], { HOME: dir, XDG_CONFIG_HOME: join(dir, 'none') });
    expect(flagged.code).toBe(0);
    expect(flagged.stderr).toMatch(/--token is visible in shell history/);
  });

  it('apply pins every tag to the digest in the registry; the same file again changes nothing', async () => {
    const v1 = await writeDemoManifest(dir, rig.registry, '1.0.0');
    const text = await fleet.cli(['apply', '-f', v1]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`published demo@1.0.0`);
    expect(text.stdout).toContain(`${rig.registry}/${DEMO_REPOSITORY}@${images.v1.manifestDigest}`);

    const again = await fleet.cliJson<PublishResult>(['apply', '-f', v1]);
    expect(again.created).toBe(false);
    expect(again.services).toEqual({
      app: `${rig.registry}/${DEMO_REPOSITORY}@${images.v1.manifestDigest}`,
      agent: `${rig.registry}/berth-demo/agent@${images.agent.manifestDigest}`,
    });

    const v2 = await writeDemoManifest(dir, rig.registry, '2.0.0');
    expect((await fleet.cliJson<PublishResult>(['apply', '-f', v2])).created).toBe(true);
  });

  it('apply of an image that does not exist names the service and fails without publishing', async () => {
    const file = join(dir, 'missing.yaml');
    await writeFile(file, `name: demo\nversion: 9.9.9\nservices:\n  app:\n    image: ${rig.registry}/${DEMO_REPOSITORY}:9.9.9\n`);
    const r = await fleet.cli(['apply', '-f', file]);
    expect(r.code).toBe(1);
    const [head, problem] = r.stderr.split('\n');
    expect(head).toMatch(/^berth: publishing .*missing\.yaml failed: 1 problem\(s\), nothing was published \[422 /);
    expect(problem).toMatch(/^  service app: .*:9\.9\.9: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const list = await fleet.cliJson<ManifestInfo[]>(['manifests', 'list']);
    expect(list.map((m) => `${m.name}@${m.version}`).sort()).toEqual(['demo@1.0.0', 'demo@2.0.0']);
  });

  it('manifests show and diff', async () => {
    const m = await fleet.cliJson<ManifestDetail>(['manifests', 'show', 'demo@2.0.0']);
    expect(m.services.app).toBe(`${rig.registry}/${DEMO_REPOSITORY}@${images.v2.manifestDigest}`);
    expect(m.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const diff = await fleet.cliJson<ManifestDiff>(['manifests', 'diff', 'demo@1.0.0', '2.0.0']);
    expect(diff.from).toBe('demo@1.0.0');
    expect(diff.services).toEqual([
      { service: 'app', change: 'changed', image: { from: `${rig.registry}/${DEMO_REPOSITORY}@${images.v1.manifestDigest}`, to: `${rig.registry}/${DEMO_REPOSITORY}@${images.v2.manifestDigest}` }, fields: [] },
    ]);
    const text = await fleet.cli(['manifests', 'diff', 'demo@1.0.0', 'demo@2.0.0']);
    expect(text.stdout.split('\n').slice(0, 3)).toEqual(['demo@1.0.0 → demo@2.0.0', '~ app', `    image: ${rig.registry}/${DEMO_REPOSITORY}@${images.v1.manifestDigest} → ${rig.registry}/${DEMO_REPOSITORY}@${images.v2.manifestDigest}`]);
  });

  it('imports manufacturing records idempotently, lists by selector, labels, shows the twin', async () => {
    expect(await fleet.cliJson(['devices', 'import', fleet.recordsFile])).toEqual({ total: 2, created: 2, updated: 0, unchanged: 0 });
    expect(await fleet.cliJson(['devices', 'import', fleet.recordsFile])).toEqual({ total: 2, created: 0, updated: 0, unchanged: 2 });

    const berlin = await fleet.cliJson<DeviceSummary[]>(['devices', 'list', '-l', 'site=berlin']);
    expect(berlin.map((d) => d.serial)).toEqual(['gw-a']);
    expect(berlin[0]).toMatchObject({ status: 'registered', online: false, desired: null, labels: { site: 'berlin' } });

    const labelled = await fleet.cli(['devices', 'label', 'gw-b', 'tier=canary', 'site-']);
    expect(labelled).toMatchObject({ code: 0, stdout: 'gw-b: labels tier=canary' });
    expect((await fleet.cliJson<DeviceSummary[]>(['devices', 'list', '-l', 'tier=canary'])).map((d) => d.serial)).toEqual(['gw-b']);

    const twin = await fleet.cliJson<Twin>(['devices', 'show', 'gw-a']);
    expect(twin).toMatchObject({ device: { serial: 'gw-a', status: 'registered' }, desired: null, reported: null, inSync: false, drift: [] });

    const table = await fleet.cli(['devices', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^SERIAL\s+STATUS\s+ONLINE\s+DESIRED\s+PHASE\s+LAST SEEN\s+LABELS$/);
    expect(table.stdout).toMatch(/gw-b\s+registered\s+no\s+-\s+-\s+-\s+tier=canary/);
  });

  it('a bad records file is refused by line number and nothing is imported', async () => {
    const file = join(dir, 'bad.csv');
    await writeFile(file, `serial,public_key,labels\ngw-z,${fleet.gateway('gw-a').publicKey.replace(/^./, '')},\n`);
    const r = await fleet.cli(['devices', 'import', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 2/);
    expect((await fleet.cliJson<DeviceSummary[]>(['devices', 'list'])).map((d) => d.serial)).toEqual(['gw-a', 'gw-b']);
  });

  it('tokens: a viewer reads but cannot change; a revoked token stops working', async () => {
    const created = await fleet.cli(['tokens', 'create', '--role', 'viewer', '--name', 'ci-viewer', '--expires', '1h']);
    expect(created.code).toBe(0);
    const viewer = created.stdout.trim();
    expect(viewer).toMatch(/^berth_\S+$/);
    expect(created.stderr).toMatch(/shown only now/);

    expect((await fleet.cli(['devices', 'list'], { token: viewer })).code).toBe(0);
    const refused = await fleet.cli(['devices', 'label', 'gw-a', 'x=y'], { token: viewer });
    expect(refused.code).toBe(1);
    expect(refused.stderr.split('\n')[0]).toBe('berth: labelling device gw-a failed: this needs the release-manager role; the token has viewer [403 forbidden]');

    const tokens = await fleet.cliJson<TokenInfo[]>(['tokens', 'list']);
    const mine = tokens.find((t) => t.name === 'ci-viewer');
    expect(mine).toMatchObject({ role: 'viewer', revokedAt: null });
    expect(mine?.expiresAt).not.toBeNull();
    expect((await fleet.cli(['tokens', 'revoke', mine!.id, '--yes'])).code).toBe(0);
    const after = await fleet.cli(['devices', 'list'], { token: viewer });
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/401 invalid-token/);
  });

  it('campaign create/list/status/pause/abort, with the flags as rules', async () => {
    const created = await fleet.cliJson<Campaign>([
      'campaign', 'create', '--manifest', 'demo@2.0.0', '--selector', 'site=berlin', '--waves', '1,50%,100%',
      '--success', '95%', '--max-failures', '10%', '--device-timeout', '10m', '--soak', '30s', '--on-failure', 'rollback', '--name', 'cli-test',
      // No gateway runs here: the devices are imported, not enrolled.
      '--allow-empty',
    ]);
    expect(created).toMatchObject({ name: 'cli-test', manifest: 'demo@2.0.0', selector: 'site=berlin', status: 'draft' });
    expect(created.rules).toEqual({ waves: ['1', '50%', '100%'], success: 0.95, maxFailures: 0.1, deviceTimeout: '10m', soak: '30s', onFailure: 'rollback' });
    expect(created.waves.map((w) => w.index)).toEqual([1, 2, 3]);

    const list = await fleet.cliJson<Campaign[]>(['campaign', 'list']);
    expect(list.map((c) => c.id)).toContain(created.id);

    const pause = await fleet.cli(['campaign', 'pause', created.id]);
    expect(pause.code).toBe(1);
    expect(pause.stderr.split('\n')[0]).toMatch(/^berth: pausing campaign \S+ failed: cannot pause a campaign that is draft \[409/);

    const aborted = await fleet.cliJson<Campaign>(['campaign', 'abort', created.id, '--yes']);
    expect(aborted.status).toBe('aborted');
    const watch = await fleet.cli(['campaign', 'status', created.id, '--watch']);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(/ended aborted/);

    const unknown = await fleet.cli(['campaign', 'status', 'cmp_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no campaign id starts with cmp_nope/);
  });

  it('campaign create: --soak 1h30m and --waves 1,12.5%,100% mean the same to the CLI and the server; a bad wave gets the same words from both', async () => {
    const created = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'demo@2.0.0', '--selector', 'site=nowhere', '--waves', '1,12.5%,100%', '--soak', '1h30m', '--device-timeout', '1h30m', '--allow-empty']);
    // Left out, the shares are the server's defaults, the ones `campaign create --help` shows.
    expect(created.rules).toEqual({ waves: ['1', '12.5%', '100%'], success: CAMPAIGN_DEFAULTS.success, maxFailures: CAMPAIGN_DEFAULTS.maxFailures, deviceTimeout: '1h30m', soak: '1h30m', onFailure: CAMPAIGN_DEFAULTS.onFailure });
    expect((await fleet.cliJson<Campaign>(['campaign', 'abort', created.id, '--yes'])).status).toBe('aborted');

    const cli = await fleet.cli(['campaign', 'create', '--manifest', 'demo@2.0.0', '--selector', 'site=nowhere', '--waves', '1,50%,12.5%']);
    expect(cli.code).toBe(2);
    const res = await fetch(`${fleet.controlPlaneUrl}/v1/campaigns`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ manifest: 'demo@2.0.0', selector: 'site=nowhere', waves: ['1', '50%', '12.5%'] }),
    });
    const server = (await res.json()) as { error: { message: string; field: string } };
    expect([res.status, server.error.field]).toEqual([400, 'waves[2]']);
    const detail = 'wave 3 (12.5%) does not grow over wave 2 (50%): waves are cumulative targets, like 1,10%,100%';
    expect(cli.stderr.split('\n')[0]).toBe(`berth: --waves: ${detail}`);
    expect(server.error.message).toBe(`waves[2]: ${detail}`);
  });

  it('audit lists what the operators did, and --since narrows it', async () => {
    const entries = await fleet.cliJson<AuditEntry[]>(['audit']);
    const actions = entries.map((e) => e.action);
    for (const a of ['token.create', 'token.revoke', 'device.import', 'device.labels', 'campaign.create', 'campaign.abort']) expect(actions).toContain(a);
    const labels = entries.find((e) => e.action === 'device.labels');
    expect(labels).toMatchObject({ target: 'gw-b', before: { site: 'paris' }, after: { tier: 'canary' } });
    expect(await fleet.cliJson(['audit', '--since', new Date(Date.now() + 60_000).toISOString()])).toEqual([]);
  });

  it('fails with one line and a hint when the server is unreachable, the token missing, or a flag wrong', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await runCaptured(['devices', 'list'], { BERTH_SERVER: closed, BERTH_TOKEN: 'berth_x', HOME: dir, XDG_CONFIG_HOME: join(dir, 'none') });
    expect(down.code).toBe(1);
    expect(down.stderr.split('\n')).toEqual([
      `berth: listing devices failed: cannot reach the control plane at ${closed} (ECONNREFUSED)`,
      '  is it running? check --server / BERTH_SERVER / `berth login`',
    ]);
    const noToken = await runCaptured(['devices', 'list'], { BERTH_SERVER: fleet.controlPlaneUrl, HOME: dir, XDG_CONFIG_HOME: join(dir, 'none') });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^berth: no operator token/);
    const usage = await fleet.cli(['campaign', 'create', '--manifest', 'demo@2.0.0', '--waves', '1', '--selecter', 'x']);
    expect(usage.code).toBe(2);
    expect(usage.stderr.split('\n')[0]).toBe("berth: unknown option '--selecter' (did you mean --selector?)");
    expect(usage.stderr.split('\n')[1]).toMatch(/^ {2}usage: berth campaigns create --manifest/);
  });

  it('completes manifests and campaign ids from the server in bash', async () => {
    const path = await berthOnPath(dir);
    const env = { BERTH_SERVER: fleet.controlPlaneUrl, BERTH_TOKEN: fleet.adminToken, HOME: dir, XDG_CONFIG_HOME: join(dir, 'none'), BERTH_COMPLETION_TIMEOUT: '60s' };
    const releases = (await fleet.cliJson<ManifestInfo[]>(['manifests', 'list'])).map((m) => `${m.name}@${m.version}`);
    expect(releases).toContain('demo@2.0.0');
    expect((await bashComplete(path, ['campaigns', 'create', '--manifest', 'demo@'], env)).offered.sort()).toEqual(releases.filter((r) => r.startsWith('demo@')).sort());
    const ids = (await fleet.cliJson<Campaign[]>(['campaigns', 'list'])).map((c) => c.id);
    expect(ids.length).toBeGreaterThan(0);
    expect((await bashComplete(path, ['campaign', 'status', ids[0].slice(0, 6)], env)).offered).toEqual(ids.filter((id) => id.startsWith(ids[0].slice(0, 6))));
  });
});
