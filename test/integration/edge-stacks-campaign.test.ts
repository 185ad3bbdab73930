import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { LABEL } from '../../edge-daemon/reconcile/spec.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { execIn, getLoopback } from './engine-probe.js';
import { Fleet, waitFor } from './fleet.js';

/**
 * Issue 12's two everyday stacks, from the very files in manifests/examples (Home Assistant +
 * Mosquitto + Node-RED; InfluxDB + Telegraf + Grafana), through what an operator types: validate,
 * apply, a campaign refused for lack of a policy, `policies set`, the campaign again, on two real
 * gateways sharing the rig's engine. Only what cannot be on this machine changes: the image names
 * (busybox images forged under the same names, with `mosquitto_sub` and `influx` as small scripts
 * so the files' own health checks run), the Zigbee stick (/dev/zero under its tty name), the host
 * directories (/srv, /etc/telegraf) the published host ports (free ones)
 * and the open-files limit (this sandbox's hard limit is lower).
 */

const rig = rigFromEnv();
const REPO = `stacks-${process.pid}`;
let fleet: Fleet;
let dir = '';
const port = { mqtt: 0, ws: 0, flows: 0, influx: 0, grafana: 0 };
let hubFile = '';
let metricsFile = '';

const GROUPS = 'root:x:0:\ndialout:x:20:\nnobody:x:65534:\n';
const script = (body: string) => ({ content: `#!/bin/sh\n${body}\n`, mode: 0o755 });

/** The real example file, with each replacement applied; a replacement that no longer matches fails the test. */
async function example(name: string, replacements: [string, string][]): Promise<string> {
  let text = await readFile(join(import.meta.dirname, '../../manifests/examples', name), 'utf8');
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`manifests/examples/${name} no longer contains ${JSON.stringify(from)}`);
    text = text.split(from).join(to);
  }
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

async function forgeStackImages(): Promise<void> {
  const bb = busyboxLayer();
  const img = (repo: string, tag: string, files: Record<string, ReturnType<typeof script> | string>, Cmd: string[]) =>
    forgeImage(rig.registry, `${REPO}/${repo}`, tag, { layers: [bb, { files: { '/etc/group': GROUPS, ...files } }], config: { Cmd } });
  await Promise.all([
    img('home-assistant/home-assistant', '2024.6', {}, ['sleep', '3600']),
    img('eclipse-mosquitto', '2.0', { '/www/index.html': 'mosquitto broker\n', '/usr/local/bin/mosquitto_sub': script('exec wget -q -O /dev/null http://127.0.0.1:1883/') }, ['httpd', '-f', '-p', '1883', '-h', '/www']),
    // Node-RED reaches the broker by the name in its MQTT_URL (service-name DNS), then serves what it got.
    img('nodered/node-red', '3.1', { '/usr/local/bin/flows': script('mkdir -p /tmp/www\nuntil wget -q -O /tmp/www/index.html "http://${MQTT_URL#mqtt://}/"; do sleep 1; done\nexec httpd -f -p 1880 -h /tmp/www') }, ['flows']),
    img('influxdb', '2.7', { '/www/index.html': 'influxdb\n', '/usr/local/bin/influx': script('exec wget -q -O /dev/null http://127.0.0.1:8086/') }, ['httpd', '-f', '-p', '8086', '-h', '/www']),
    img('telegraf', '1.30', { '/usr/local/bin/telegraf': script('while true; do wget -q -O /tmp/seen.new "$INFLUX_URL/" && mv /tmp/seen.new /tmp/seen; sleep 1; done') }, ['telegraf']),
    img('grafana/grafana-oss', '10.4', { '/www/index.html': 'grafana\n' }, ['httpd', '-f', '-p', '3000', '-h', '/www']),
  ]);
}

async function inspect(serial: string, service: string) {
  const id = fleet.gateway(serial).deviceId!;
  const [c] = await fleet.docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${id}`, `${LABEL.service}=${service}`] } });
  if (!c) throw new Error(`${serial} has no container for ${service}`);
  return fleet.docker.getContainer(c.Id).inspect();
}

const exec = (container: string, cmd: string[]) => execIn(fleet.docker, container, cmd);
const get = getLoopback;

const campaign = (manifest: string, selector: string, extra: string[] = []) =>
  fleet.cli(['campaign', 'create', '--manifest', manifest, '--selector', selector, '--waves', '100%', '--device-timeout', '3m', ...extra, '--start', '--output', 'json']);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-stacks-'));
  for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();
  await mkdir(join(dir, 'srv'), { recursive: true });
  await writeFile(join(dir, 'telegraf.conf'), '[agent]\n  interval = "10s"\n');
  const registry: [string, string] = ['registry.example.com/', `${rig.registry}/${REPO}/`];
  hubFile = await example('home-assistant.yaml', [
    registry,
    ['/dev/ttyUSB0:/dev/ttyUSB0', '/dev/zero:/dev/ttyUSB0'],
    ['/srv/', `${dir}/srv/`],
    ['"1883:1883"', `"${port.mqtt}:1883"`],
    ['"127.0.0.1:9001:9001"', `"127.0.0.1:${port.ws}:9001"`],
    ['"1880:1880"', `"${port.flows}:1880"`],
  ]);
  metricsFile = await example('metrics.yaml', [
    registry,
    ['"127.0.0.1:8086:8086"', `"127.0.0.1:${port.influx}:8086"`],
    ['published: 3000', `published: ${port.grafana}`],
    ['/etc/telegraf/telegraf.conf:/etc', `${dir}/telegraf.conf:/etc`],
    // This sandbox's hard limit on open files is 20000: a container cannot be given more.
    ['nofile: { soft: 32768, hard: 65536 }', 'nofile: { soft: 8192, hard: 16384 }'],
  ]);
  await forgeStackImages();
  fleet = await Fleet.start({
    engine: rig,
    dir,
    gateways: [
      { serial: 'gw-hub', labels: { site: 'lab', hw: 'zigbee' } },
      { serial: 'gw-metrics', labels: { site: 'lab', hw: 'metrics' } },
    ],
  });
  expect((await fleet.cli(['devices', 'import', fleet.recordsFile])).code).toBe(0);
  for (const serial of ['gw-hub', 'gw-metrics']) await fleet.startGateway(serial);
}, 120_000);

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
  for (const n of await fleet.docker.listNetworks()) {
    if (n.Labels?.[LABEL.device] && [...fleet.gateways.values()].some((g) => g.deviceId === n.Labels?.[LABEL.device])) await fleet.docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
});

describe('the example stacks through validate, apply, policy and campaign on two gateways sharing one engine', { timeout: 240_000 }, () => {
  it('validate takes both files (container_name warned); a typo gets "did you mean"', async () => {
    const v = await fleet.cli(['manifests', 'validate', hubFile, metricsFile]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('(home-hub@1.0.0, digest sha256:');
    expect(v.stdout).toContain('(gateway-metrics@2.1.0, digest sha256:');
    expect(v.stderr).toContain('services.mosquitto.container_name: Berth names the container itself; "mosquitto" becomes the service\'s hostname and network alias');
    const typo = join(dir, 'typo.yaml');
    await writeFile(typo, (await readFile(metricsFile, 'utf8')).replace('    environment:\n      HOST_PROC', '    enviroment:\n      HOST_PROC'));
    const t = await fleet.cli(['manifests', 'validate', typo]);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/typo\.yaml:\d+:\d+: services\.telegraf\.enviroment: not supported; did you mean environment\?/);
  });

  it('apply prints the privileges; the campaign is refused without a policy and nothing is deployed', async () => {
    const hub = await fleet.cli(['apply', '-f', hubFile]);
    expect(hub.code, hub.stderr).toBe(0);
    expect(hub.stdout).toContain('devices=/dev/zero  (nodered)');
    expect(hub.stdout).toContain('network_mode=host  (homeassistant)');
    const metrics = await fleet.cli(['apply', '-f', metricsFile]);
    expect(metrics.code, metrics.stderr).toBe(0);
    expect(metrics.stdout).toContain('cap_add=NET_RAW  (telegraf)');
    const refused = await campaign('home-hub@1.0.0', 'hw=zigbee');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('1 device matching hw=zigbee lacks devices=/dev/zero');
    expect(await fleet.containers('gw-hub')).toEqual([]);
  });

  it('after policies set, both campaigns complete and every stack runs healthy', async () => {
    const grants: [string, string, string[]][] = [
      ['home-hub', 'hw=zigbee', ['network_mode=host', 'devices=/dev/zero', 'group_add=dialout', `binds=/etc/localtime:ro,/run/dbus:ro,${dir}/srv/**`, `ports=${port.mqtt},${port.ws},${port.flows}`]],
      ['metrics', 'hw=metrics', ['cap_add=NET_RAW', `binds=/proc:ro,/sys:ro,${dir}/telegraf.conf:ro`, `ports=${port.influx},${port.grafana}`]],
    ];
    for (const [name, selector, allow] of grants) {
      const set = await fleet.cli(['policies', 'set', name, '--selector', selector, ...allow.flatMap((a) => ['--allow', a])]);
      expect(set.code, set.stderr).toBe(0);
    }
    const started = [await campaign('home-hub@1.0.0', 'hw=zigbee'), await campaign('gateway-metrics@2.1.0', 'hw=metrics')];
    for (const c of started) {
      expect(c.code, c.stderr).toBe(0);
      const done = await fleet.waitForCampaign((JSON.parse(c.stdout) as Campaign).id, ['completed', 'failed', 'aborted', 'paused'], 180_000);
      expect(done.status, JSON.stringify(done.failing)).toBe('completed');
    }
    await fleet.waitForRelease(['gw-hub'], 'home-hub@1.0.0');
    await fleet.waitForRelease(['gw-metrics'], 'gateway-metrics@2.1.0');
  });

  it('docker inspect shows the hub stack\'s keys applied: host network, device, group, binds, tmpfs, logging, alias, DNS, ports', async () => {
    const ha = await inspect('gw-hub', 'homeassistant');
    expect(ha.HostConfig.NetworkMode).toBe('host');
    expect(ha.HostConfig.Binds).toEqual(expect.arrayContaining([`${dir}/srv/homeassistant/config:/config`, '/etc/localtime:/etc/localtime:ro', '/run/dbus:/run/dbus:ro']));
    expect(ha.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10485760', 'max-file': '3' } });
    const broker = await inspect('gw-hub', 'mosquitto');
    expect(broker.State.Health?.Status).toBe('healthy');
    expect(broker.Config.Hostname).toBe('mosquitto');
    expect(Object.values(broker.NetworkSettings.Networks)[0].Aliases).toEqual(expect.arrayContaining(['mosquitto']));
    expect(broker.HostConfig.Tmpfs).toEqual({ '/mosquitto/log': 'size=16777216' });
    expect(broker.HostConfig.Binds).toContain(`${dir}/srv/mosquitto/config:/mosquitto/config:ro`);
    expect(broker.NetworkSettings.Ports['9001/tcp']?.[0]).toEqual({ HostIp: '127.0.0.1', HostPort: String(port.ws) });
    expect((await get(port.mqtt)).trim()).toBe('mosquitto broker');
    const flows = await inspect('gw-hub', 'nodered');
    expect(flows.HostConfig.Devices).toEqual([{ PathOnHost: '/dev/zero', PathInContainer: '/dev/ttyUSB0', CgroupPermissions: 'rwm' }]);
    expect((await exec(flows.Id, ['sh', '-c', 'head -c 4 /dev/ttyUSB0 | wc -c'])).out).toBe('4\n');
    expect(flows.HostConfig.GroupAdd).toEqual(['dialout']);
    expect((await exec(flows.Id, ['id', '-G'])).out.trim().split(' ')).toContain('20');
    expect((await exec(flows.Id, ['sh', '-c', 'echo x > /etc/localtime'])).code).not.toBe(0);
    expect(flows.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10485760' } });
    // Node-RED found the broker by its name and serves what it got, on the published port.
    expect((await get(port.flows)).trim()).toBe('mosquitto broker');
  });

  it('docker inspect shows the metrics stack\'s keys applied; its network is its own, apart from the other gateway\'s', async () => {
    const telegraf = await inspect('gw-metrics', 'telegraf');
    expect(telegraf.HostConfig).toMatchObject({ CapAdd: ['NET_RAW'], CapDrop: ['MKNOD'], ReadonlyRootfs: true, Init: true, ExtraHosts: ['upstream-ntp:192.0.2.123'], SecurityOpt: ['no-new-privileges=true'], Tmpfs: { '/tmp': '' } });
    expect(telegraf.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 5 });
    expect(telegraf.HostConfig.LogConfig).toEqual({ Type: 'local', Config: { 'max-size': '5242880', 'max-file': '2' } });
    expect(telegraf.HostConfig.Binds).toEqual(expect.arrayContaining(['/proc:/host/proc:ro', '/sys:/host/sys:ro', `${dir}/telegraf.conf:/etc/telegraf/telegraf.conf:ro`]));
    expect(telegraf.Config.Hostname).toBe('gateway');
    // Telegraf reached the database by its service name (each fetch lands whole, by rename).
    await waitFor('telegraf to have read influxdb', async () => ((await exec(telegraf.Id, ['cat', '/tmp/seen'])).out.trim() === 'influxdb' ? true : undefined), { timeoutMs: 30_000 });
    expect((await exec(telegraf.Id, ['cat', '/host/proc/1/comm'])).code).toBe(0);
    const influx = await inspect('gw-metrics', 'influxdb');
    expect(influx.State.Health?.Status).toBe('healthy');
    expect(influx.HostConfig.Ulimits).toEqual([{ Name: 'nofile', Soft: 8192, Hard: 16384 }]);
    expect(influx.HostConfig).toMatchObject({ MemoryReservation: 128 << 20, Memory: 512 << 20, NanoCpus: 1e9 });
    expect((await get(port.influx)).trim()).toBe('influxdb');
    const grafana = await inspect('gw-metrics', 'grafana');
    expect(grafana.Config.User).toBe('472');
    expect((await exec(grafana.Id, ['id', '-u'])).out.trim()).toBe('472');
    expect((await get(port.grafana)).trim()).toBe('grafana');
    // Isolated: the metrics stack cannot resolve the hub's services, and the networks differ per gateway.
    expect((await exec(telegraf.Id, ['wget', '-q', '-T', '2', '-O-', 'http://mosquitto:1883/'])).code).not.toBe(0);
    const hubNets = Object.keys((await inspect('gw-hub', 'mosquitto')).NetworkSettings.Networks);
    const metricsNets = Object.keys(telegraf.NetworkSettings.Networks);
    expect(hubNets).toHaveLength(1);
    expect(metricsNets).toHaveLength(1);
    expect(metricsNets).not.toEqual(hubNets);
  });

  it('the hub sent to the metrics gateway collides on a host port: the device reports it and rolls back, the other gateway\'s hub keeps running', async () => {
    const brokerBefore = await inspect('gw-hub', 'mosquitto');
    const telegrafBefore = await inspect('gw-metrics', 'telegraf');
    const widen = await fleet.cli(['policies', 'set', 'home-hub', '--selector', 'site=lab', '--allow', 'network_mode=host', '--allow', 'devices=/dev/zero', '--allow', 'group_add=dialout', '--allow', `binds=/etc/localtime:ro,/run/dbus:ro,${dir}/srv/**`, '--allow', `ports=${port.mqtt},${port.ws},${port.flows}`]);
    expect(widen.code, widen.stderr).toBe(0);
    const c = await campaign('home-hub@1.0.0', 'hw=metrics', ['--max-failures', '0%', '--on-failure', 'rollback']);
    expect(c.code, c.stderr).toBe(0);
    const end = await fleet.waitForCampaign((JSON.parse(c.stdout) as Campaign).id, ['completed', 'failed', 'aborted', 'paused'], 180_000);
    expect(['failed', 'aborted']).toContain(end.status);
    expect(end.failing[0]?.serial).toBe('gw-metrics');
    expect(end.failing[0]?.error).toMatch(new RegExp(`service mosquitto cannot start: host port (0\\.0\\.0\\.0:${port.mqtt}|127\\.0\\.0\\.1:${port.ws}) is already taken by another container or process on this host \\(engine: `));
    await fleet.waitForRelease(['gw-metrics'], 'gateway-metrics@2.1.0');
    expect((await inspect('gw-metrics', 'telegraf')).State.Running).toBe(true);
    expect((await inspect('gw-metrics', 'telegraf')).Config.Labels[LABEL.release]).toBe(telegrafBefore.Config.Labels[LABEL.release]);
    const brokerAfter = await inspect('gw-hub', 'mosquitto');
    expect(brokerAfter.Id).toBe(brokerBefore.Id);
    expect(brokerAfter.State.StartedAt).toBe(brokerBefore.State.StartedAt);
    expect((await get(port.mqtt)).trim()).toBe('mosquitto broker');
  });

  it('a stack for another platform is refused by the gateway before anything running is stopped', async () => {
    const arm = join(dir, 'metrics-arm.yaml');
    await writeFile(arm, (await readFile(metricsFile, 'utf8')).replace('version: 2.1.0', 'version: 2.1.1').replace('  influxdb:\n', '  influxdb:\n    platform: linux/arm64\n'));
    expect((await fleet.cli(['apply', '-f', arm])).code).toBe(0);
    const before = await inspect('gw-metrics', 'influxdb');
    const c = await campaign('gateway-metrics@2.1.1', 'hw=metrics', ['--max-failures', '0%', '--on-failure', 'rollback']);
    expect(c.code, c.stderr).toBe(0);
    const end = await fleet.waitForCampaign((JSON.parse(c.stdout) as Campaign).id, ['completed', 'failed', 'aborted', 'paused'], 180_000);
    expect(['failed', 'aborted']).toContain(end.status);
    expect(end.failing[0]?.error).toContain(`service influxdb asks for platform linux/arm64, but its image ${rig.registry}/${REPO}/influxdb`);
    await fleet.waitForRelease(['gw-metrics'], 'gateway-metrics@2.1.0');
    const after = await inspect('gw-metrics', 'influxdb');
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
  });
});
