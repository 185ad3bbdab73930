import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeDaemon } from '../../edge-daemon/index.js';
import { LABEL, networkName } from '../../edge-daemon/reconcile/spec.js';
import { parseManifest, formatIssue } from '../../manifests/parse.js';
import type { Manifest } from '../../manifests/model.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { execIn, getLoopback } from './engine-probe.js';
import { committed, makeDevice, removeDevice, startProxy, startTestControlPlane, startTestDaemon, waitFor, type TestControlPlane, type TestDevice } from './edge-daemon-fixtures.js';

/**
 * Issue 12's stacks on the rig's real dockerd (`--bridge=none --iptables=false`): user-defined
 * bridge networks with service-name DNS, a published port through the userland proxy, a device,
 * group_add, a bind, tmpfs, logging, capabilities, read_only, ulimits, init and extra_hosts —
 * each checked in `docker inspect` and from inside the containers. Two gateways share the engine.
 */

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
/** The forged busybox image every service of both stacks runs (with a dialout group). */
let image = '';
let cp: TestControlPlane;
let proxy: Awaited<ReturnType<typeof startProxy>>;
const daemons: EdgeDaemon[] = [];
const devices: string[] = [];

type Device = TestDevice;

function hubStack(version: string, greeting: string): Manifest {
  const r = parseManifest(
    `name: hub
version: ${version}
services:
  broker:
    image: ${image}
    container_name: mosquitto
    command: ["sh", "-c", "mkdir -p /run/www && echo ${greeting} > /run/www/index.html && exec httpd -f -p 8080 -h /run/www"]
    restart: unless-stopped
    ports: ["127.0.0.1::8080"]
    tmpfs: ["/run:size=8m,mode=1777"]
    logging: { driver: json-file, options: { max-size: 1m, max-file: "2" } }
    healthcheck: { test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"], interval: 1s, retries: 10 }
  flows:
    image: ${image}
    command: ["sh", "-c", "while true; do wget -q -O /tmp/seen http://mosquitto:8080/ && wget -q -O /tmp/seen2 http://broker:8080/; sleep 1; done"]
    restart: unless-stopped
    devices: ["/dev/zero:/dev/ttyUSB0"]
    group_add: [dialout]
    volumes: ["/etc/localtime:/etc/localtime:ro"]
    depends_on: { broker: { condition: service_healthy } }
    healthcheck: { test: ["CMD-SHELL", "test -s /tmp/seen && test -s /tmp/seen2"], interval: 1s, retries: 20 }
  hub:
    image: ${image}
    command: ["sleep", "3600"]
    network_mode: host
    restart: unless-stopped
  setup:
    image: ${image}
    command: ["sh", "-c", "echo configured"]
    restart: "no"
x-berth: { update: { health_timeout: 40s } }
`,
    'hub.yaml',
  );
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}

function metricsStack(): Manifest {
  const r = parseManifest(
    `name: metrics
version: 1.0.0
services:
  db:
    image: ${image}
    command: ["sh", "-c", "mkdir -p /tmp/www && echo db > /tmp/www/index.html && exec httpd -f -p 8086 -h /tmp/www"]
    networks: [monitoring]
    tmpfs: [/tmp]
    ulimits: { nofile: { soft: 1024, hard: 2048 } }
    restart: always
  agent:
    image: ${image}
    command: ["sleep", "3600"]
    networks: { monitoring: { aliases: [telegraf] } }
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    read_only: true
    init: true
    extra_hosts: ["upstream-ntp:192.0.2.123"]
    stop_signal: SIGINT
    restart: always
networks: { monitoring: {} }
x-berth: { update: { health_timeout: 30s } }
`,
    'metrics.yaml',
  );
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}

async function start(dev: Device, allow?: string) {
  const d = await startTestDaemon(cp, dev, rig.dockerHost, { allow });
  daemons.push(d);
  return d;
}


async function inspectService(deviceId: string, service: string) {
  const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${deviceId}`, `${LABEL.service}=${service}`] } });
  if (!c) throw new Error(`no container for ${service}`);
  return docker.getContainer(c.Id).inspect();
}

const exec = async (container: string, cmd: string[]) => (await execIn(docker, container, cmd)).out;
const get = getLoopback;

beforeAll(async () => {
  const forged = await forgeImage(rig.registry, `stacks/app-${process.pid}`, 'v1', {
    layers: [busyboxLayer(), { files: { '/etc/group': 'root:x:0:\ndialout:x:20:\nnobody:x:65534:\n' } }],
    config: { Cmd: ['sleep', '3600'] },
  });
  image = forged.reference;
  proxy = await startProxy(rig);
  cp = await startTestControlPlane({ registryProxy: proxy.url });
});

afterAll(async () => {
  for (const d of daemons) await d.close();
  for (const id of devices) {
    await removeDevice(docker, id);
    for (const n of await docker.listNetworks({ filters: { label: [`${LABEL.device}=${id}`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  await cp?.close();
  await proxy?.close();
});

describe('real stacks on the real engine, two gateways sharing it', () => {
  const gateways: { dev: Device; daemon: EdgeDaemon }[] = [];

  it('the hub stack runs healthy on two gateways: service-name DNS, container_name alias, published port, device, group, bind, tmpfs, logging', { timeout: 240_000 }, async () => {
    for (let i = 0; i < 2; i++) {
      const dev = await makeDevice(cp);
      devices.push(dev.deviceId);
      const daemon = await start(dev);
      gateways.push({ dev, daemon });
      await cp.publish(daemon.deviceId, { sequence: 1, spec: hubStack('1.0.0', `hello-${i}`) });
    }
    for (const g of gateways) await committed(g.daemon, 1);

    for (const [i, g] of gateways.entries()) {
      const id = g.daemon.deviceId;
      const net = networkName(id, hubStack('1.0.0', ''), 'default');
      const broker = await inspectService(id, 'broker');
      const flows = await inspectService(id, 'flows');
      // Networks are per gateway: each gateway's broker is on its own network, under both names.
      expect(Object.keys(broker.NetworkSettings.Networks)).toEqual([net]);
      expect(broker.NetworkSettings.Networks[net].Aliases).toEqual(expect.arrayContaining(['broker', 'mosquitto']));
      expect(broker.Config.Hostname).toBe('mosquitto');
      expect(broker.HostConfig.Tmpfs).toEqual({ '/run': 'size=8388608,mode=1777' });
      expect(await exec(broker.Id, ['sh', '-c', 'grep " /run " /proc/mounts'])).toMatch(/tmpfs \/run tmpfs .*size=8192k/);
      expect(broker.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '1048576', 'max-file': '2' } });
      // The published port answers on 127.0.0.1 through the userland proxy, each gateway its own.
      const port = Number(broker.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
      expect(port).toBeGreaterThan(0);
      expect(broker.NetworkSettings.Ports['8080/tcp']?.[0]?.HostIp).toBe('127.0.0.1');
      expect((await get(port)).trim()).toBe(`hello-${i}`);
      // flows resolved mosquitto and broker by name (its healthcheck passed), and got its hardware.
      expect(flows.State.Health?.Status).toBe('healthy');
      expect((await exec(flows.Id, ['cat', '/tmp/seen'])).trim()).toBe(`hello-${i}`);
      expect(flows.HostConfig.Devices).toEqual([{ PathOnHost: '/dev/zero', PathInContainer: '/dev/ttyUSB0', CgroupPermissions: 'rwm' }]);
      expect(await exec(flows.Id, ['sh', '-c', 'head -c 4 /dev/ttyUSB0 | wc -c'])).toBe('4\n');
      expect(flows.HostConfig.GroupAdd).toEqual(['dialout']);
      expect((await exec(flows.Id, ['id', '-G'])).trim().split(' ')).toContain('20');
      expect(flows.HostConfig.Binds).toEqual(['/etc/localtime:/etc/localtime:ro']);
      expect(await exec(flows.Id, ['sh', '-c', 'echo x > /etc/localtime 2>&1 || echo refused'])).toMatch(/Read-only|refused/);
      const hub = await inspectService(id, 'hub');
      expect(hub.HostConfig.NetworkMode).toBe('host');
      const setup = await inspectService(id, 'setup');
      expect(setup.State).toMatchObject({ Running: false, ExitCode: 0 });
    }
  });

  it('the periodic reconcile leaves the finished one-shot (restart: no) alone', async () => {
    const { daemon } = gateways[0];
    const before = await inspectService(daemon.deviceId, 'setup');
    await new Promise((r) => setTimeout(r, 5000)); // two reconcile ticks
    const after = await inspectService(daemon.deviceId, 'setup');
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    expect(daemon.status().phase).toBe('running');
  });

  it('an update that changes only the broker recreates just the broker, on the same network', async () => {
    const { daemon } = gateways[0];
    const id = daemon.deviceId;
    const flowsBefore = await inspectService(id, 'flows');
    const brokerBefore = await inspectService(id, 'broker');
    await cp.publish(id, { sequence: 2, spec: hubStack('1.1.0', 'hello-again') });
    await committed(daemon, 2);
    const flowsAfter = await inspectService(id, 'flows');
    const brokerAfter = await inspectService(id, 'broker');
    expect(flowsAfter.Id).toBe(flowsBefore.Id);
    expect(brokerAfter.Id).not.toBe(brokerBefore.Id);
    await waitFor('flows sees the new broker by name', async () => (await exec(flowsAfter.Id, ['cat', '/tmp/seen'])).trim() === 'hello-again');
    const nets = await docker.listNetworks({ filters: { label: [`${LABEL.device}=${id}`] } });
    expect(nets.map((n) => n.Name)).toEqual([networkName(id, hubStack('1.1.0', ''), 'default')]);
  });

  it('the metrics stack: capabilities, read_only, ulimits, init, extra_hosts, aliases; the old network goes after commit', async () => {
    const { daemon } = gateways[1];
    const id = daemon.deviceId;
    const oldNet = networkName(id, hubStack('1.0.0', ''), 'default');
    await cp.publish(id, { sequence: 2, spec: metricsStack() });
    await committed(daemon, 2);
    const agent = await inspectService(id, 'agent');
    const db = await inspectService(id, 'db');
    expect(agent.HostConfig).toMatchObject({ CapAdd: ['NET_ADMIN'], CapDrop: ['MKNOD'], ReadonlyRootfs: true, Init: true, ExtraHosts: ['upstream-ntp:192.0.2.123'] });
    expect((agent.Config as { StopSignal?: string }).StopSignal).toBe('SIGINT');
    expect(db.HostConfig.Ulimits).toEqual([{ Name: 'nofile', Soft: 1024, Hard: 2048 }]);
    expect(await exec(db.Id, ['grep', 'Max open files', '/proc/1/limits'])).toMatch(/Max open files\s+1024\s+2048\s+files/);
    expect(await exec(agent.Id, ['grep', 'upstream-ntp', '/etc/hosts'])).toContain('192.0.2.123');
    expect(await exec(agent.Id, ['sh', '-c', 'touch /x 2>&1 || echo refused'])).toMatch(/Read-only|refused/);
    expect((await exec(agent.Id, ['grep', 'CapEff', '/proc/self/status'])).trim()).toMatch(/CapEff:\s+[0-9a-f]+/);
    const capEff = BigInt('0x' + (await exec(agent.Id, ['grep', 'CapEff', '/proc/self/status'])).trim().split(/\s+/)[1]);
    expect(capEff & (1n << 12n)).toBe(1n << 12n); // CAP_NET_ADMIN
    expect(capEff & (1n << 27n)).toBe(0n); // CAP_MKNOD dropped
    expect((await exec(agent.Id, ['wget', '-q', '-O-', 'http://db:8086/'])).trim()).toBe('db');
    expect(Object.values(db.NetworkSettings.Networks)[0].Aliases).toContain('db');
    const nets = (await docker.listNetworks({ filters: { label: [`${LABEL.device}=${id}`] } })).map((n) => n.Name);
    expect(nets).toEqual([networkName(id, metricsStack(), 'monitoring')]);
    expect(nets).not.toContain(oldNet);
    // The other gateway's network is untouched.
    expect((await docker.listNetworks({ filters: { label: [`${LABEL.device}=${gateways[0].daemon.deviceId}`] } })).length).toBe(1);
  });

  it('a gateway whose --allow file lacks one privilege refuses the document and keeps its running release', async () => {
    const dev = await makeDevice(cp);
    devices.push(dev.deviceId);
    const allow = join(dev.dir, 'allow');
    // Everything the hub stack asks for but the device.
    await writeFile(allow, '# the installer\'s ceiling\ngroup_add=dialout\nbinds=/etc/localtime:ro\nnetwork_mode=host\nports=ephemeral\n');
    const daemon = await start(dev, allow);
    const plain = parseManifest(`name: hub\nversion: 0.9.0\nservices:\n  hub: { image: "${image}", command: [sleep, "3600"], network_mode: none, restart: always }\n`, 'plain.yaml');
    if (!plain.ok) throw new Error('plain manifest refused');
    await cp.publish(daemon.deviceId, { sequence: 1, spec: plain.manifest });
    await committed(daemon, 1);
    const before = await inspectService(daemon.deviceId, 'hub');
    await cp.publish(daemon.deviceId, { sequence: 2, spec: hubStack('1.0.0', 'nope') });
    await waitFor('the document judged', () => daemon.status().documentsSeen >= 2 && !daemon.status().busy);
    expect(daemon.status()).toMatchObject({ currentSequence: 1, running: 'hub@0.9.0', phase: 'running' });
    expect(daemon.status().error).toBe("deployment document refused (beyond-ceiling): hub@1.0.0 asks for privileges this gateway's --allow file does not grant: devices=/dev/zero (flows)");
    const after = await inspectService(daemon.deviceId, 'hub');
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${daemon.deviceId}`] } })).toHaveLength(1);
    await waitFor('the refusal reported', () => cp.reports(daemon.deviceId).some((r) => r.error?.includes('beyond-ceiling') && r.running === 'hub@0.9.0'));
  });
});
