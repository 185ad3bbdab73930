import { describe, expect, it } from 'vitest';
import type { Manifest, Service } from '../../manifests/model.js';
import { parseManifest } from '../../manifests/parse.js';
import { plan, type ObservedContainer, type Step } from '../../edge-daemon/reconcile/planner.js';
import { LABEL, configHash, containerCreateOptions, networkName, serviceIdentities, type Release } from '../../edge-daemon/reconcile/spec.js';

/** The Compose keys of issue 12 mapped to the Docker Engine API, and the planner's network steps. */

const DEV = 'dev-1';
const DIGEST = 'sha256:' + 'c'.repeat(64);
const IMAGE = 'sha256:' + 'd'.repeat(64);

function manifestOf(yaml: string): Manifest {
  const r = parseManifest(`name: stack\nversion: 1.0.0\n${yaml}`, 'm.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  // Pinned as the control plane would.
  for (const s of Object.values(r.manifest.services)) s.image = `registry.example.com/acme/x@${DIGEST}`;
  return r.manifest;
}
const release = (spec: Manifest, sequence = 1): Release => ({ sequence, name: spec.name, version: spec.version, digest: DIGEST, spec });

function options(m: Manifest, service: string) {
  const ids = serviceIdentities(DEV, m);
  return containerCreateOptions(DEV, { name: m.name, version: m.version, sequence: 1 }, service, m.services[service], IMAGE, ids[service].context);
}

describe('engine create options', () => {
  const hub = manifestOf(`services:
  hub:
    image: x
    devices: ["/dev/ttyUSB0:/dev/zigbee:rw"]
    group_add: [dialout]
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    privileged: true
    volumes: ["/etc/localtime:/etc/localtime:ro", { type: bind, source: /proc, target: /host/proc, read_only: true }, "data:/data"]
    tmpfs: ["/run:size=64m,mode=1777"]
    sysctls: { net.core.somaxconn: 1024 }
    ulimits: { nofile: { soft: 1024, hard: 4096 } }
    shm_size: 64m
    pid: host
    ipc: host
    security_opt: ["no-new-privileges:true"]
    read_only: true
    init: false
    user: "1000"
    working_dir: /srv
    entrypoint: ["/init"]
    stop_signal: SIGINT
    stop_grace_period: 5s
    hostname: hub
    extra_hosts: ["gw:192.0.2.1"]
    dns: [192.0.2.53]
    mem_reservation: 32m
    cpuset: "0"
    restart: "on-failure:4"
    ports: ["127.0.0.1:8123:8123", "5683:5683/udp", "9000"]
    expose: [7000]
    logging: { driver: json-file, options: { max-size: 10m, max-file: 3 } }
volumes: { data: {} }
`);

  it('maps every key to the engine field docker compose uses', () => {
    const o = options(hub, 'hub');
    const net = networkName(DEV, hub, 'default');
    expect(o.Hostname).toBe('hub');
    expect(o.StopSignal).toBe('SIGINT');
    expect(o.StopTimeout).toBe(5);
    expect(o.User).toBe('1000');
    expect(o.WorkingDir).toBe('/srv');
    expect(o.Entrypoint).toEqual(['/init']);
    expect(o.ExposedPorts).toEqual({ '7000/tcp': {}, '8123/tcp': {}, '5683/udp': {}, '9000/tcp': {} });
    expect(o.NetworkingConfig).toEqual({ EndpointsConfig: { [net]: { Aliases: ['hub'] } } });
    expect(o.HostConfig).toEqual({
      Binds: ['/etc/localtime:/etc/localtime:ro'],
      Mounts: [
        { Type: 'volume', Source: 'berth-dev-1-data', Target: '/data', ReadOnly: false },
        { Type: 'bind', Source: '/proc', Target: '/host/proc', ReadOnly: true },
      ],
      Tmpfs: { '/run': 'size=67108864,mode=1777' },
      Devices: [{ PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/zigbee', CgroupPermissions: 'rw' }],
      GroupAdd: ['dialout'],
      CapAdd: ['NET_ADMIN'],
      CapDrop: ['MKNOD'],
      Privileged: true,
      Sysctls: { 'net.core.somaxconn': '1024' },
      Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 4096 }],
      ShmSize: 64 * 1024 ** 2,
      PidMode: 'host',
      IpcMode: 'host',
      SecurityOpt: ['no-new-privileges=true'],
      ReadonlyRootfs: true,
      Init: false,
      ExtraHosts: ['gw:192.0.2.1'],
      Dns: ['192.0.2.53'],
      DnsSearch: undefined,
      MemoryReservation: 32 * 1024 ** 2,
      CpusetCpus: '0',
      PortBindings: { '8123/tcp': [{ HostIp: '127.0.0.1', HostPort: '8123' }], '5683/udp': [{ HostIp: '', HostPort: '5683' }], '9000/tcp': [{ HostIp: '', HostPort: '' }] },
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(10 * 1024 ** 2), 'max-file': '3' } },
      NetworkMode: net,
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 4 },
      Memory: undefined,
      NanoCpus: undefined,
    });
  });

  it('a plain host-network service keeps its pre-issue-12 options and config hash', () => {
    const plain: Service = { image: `r.example.com/a@${DIGEST}`, environment: {}, networkMode: 'host', restart: 'no', volumes: [], dependsOn: {}, labels: {} };
    const m: Manifest = { name: 'p', version: '1.0.0', services: { a: plain }, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1000 } };
    const o = options(m, 'a');
    expect(o.HostConfig).toMatchObject({ NetworkMode: 'host', Init: true, RestartPolicy: { Name: '' }, Mounts: [] });
    expect(o.HostConfig?.Binds).toBeUndefined();
    expect(o.NetworkingConfig).toBeUndefined();
    expect(serviceIdentities(DEV, m).a.hash).toBe(configHash(plain));
  });

  it('service:NAME shares the peer container, and follows it when the peer changes', () => {
    const y = (env: string) => manifestOf(`services:\n  vpn: { image: x, environment: { V: "${env}" } }\n  app: { image: x, network_mode: "service:vpn", ipc: "service:vpn" }\n`);
    const a = serviceIdentities(DEV, y('1'));
    const b = serviceIdentities(DEV, y('2'));
    expect(options(y('1'), 'app').HostConfig).toMatchObject({ NetworkMode: `container:${a.vpn.name}`, IpcMode: `container:${a.vpn.name}` });
    expect(b.app.hash).not.toBe(a.app.hash);
  });

  it('networks are per device and manifest, stable across versions; several networks attach with aliases', () => {
    const m = manifestOf(`services:\n  db: { image: x, container_name: influx, networks: { back: { aliases: [tsdb] }, front: } }\nnetworks: { back: { internal: true }, front: {} }\n`);
    const o = options(m, 'db');
    const back = networkName(DEV, m, 'back');
    expect(back).toMatch(/^berth-dev-1-stack-back-[0-9a-f]{6}$/);
    expect(networkName('dev-2', m, 'back')).not.toBe(back);
    expect(networkName(DEV, { ...m, version: '2.0.0' }, 'back')).toBe(back);
    expect(networkName(DEV, { ...m, networks: { back: {}, front: {} } }, 'back')).not.toBe(back);
    expect(o.NetworkingConfig).toEqual({ EndpointsConfig: { [back]: { Aliases: ['db', 'tsdb', 'influx'] } } });
    expect(o.Hostname).toBe('influx');
  });
});

describe('planner: networks and one-shot services', () => {
  const m = manifestOf(`services:\n  broker: { image: x }\n  init: { image: x, restart: "no" }\n  flows: { image: x, depends_on: { init: { condition: service_completed_successfully } } }\n`);
  const r = release(m);
  const ids = serviceIdentities(DEV, m);
  const net = networkName(DEV, m, 'default');
  const containers = (state: ObservedContainer['state'], exitCode?: number): ObservedContainer[] =>
    Object.entries(ids).map(([s, id]) => ({ id: `c-${s}`, name: id.name, state: s === 'init' ? state : 'running', ...(s === 'init' && exitCode !== undefined ? { exitCode } : {}), labels: { [LABEL.device]: DEV, [LABEL.service]: s, [LABEL.configHash]: id.hash } }));

  it('creates the network before the containers, and waits for a completed dependency before its dependents start', () => {
    const steps = plan({ mode: 'apply', desired: r }, { containers: [], images: [DIGEST], volumes: [], networks: [] }, { deviceId: DEV });
    const kinds = steps.map((s) => s.kind);
    expect(steps.find((s) => s.kind === 'create-network')).toEqual({ kind: 'create-network', network: 'default', name: net, internal: false });
    expect(kinds.indexOf('create-network')).toBeLessThan(kinds.indexOf('create'));
    const wait = steps.findIndex((s) => s.kind === 'wait-healthy' && s.targets.some((t) => t.service === 'init' && t.completed));
    const startFlows = steps.findIndex((s) => s.kind === 'start' && s.service === 'flows');
    expect(wait).toBeGreaterThan(-1);
    expect(wait).toBeLessThan(startFlows);
    const create = steps.find((s): s is Extract<Step, { kind: 'create' }> => s.kind === 'create' && s.service === 'broker');
    expect(create?.context.networks).toEqual({ default: net });
  });

  it('a present network is not created again; a network the release no longer uses goes after commit', () => {
    const observedNets = [{ name: net, labels: { [LABEL.device]: DEV } }, { name: 'berth-dev-1-old-default-abcdef', labels: { [LABEL.device]: DEV } }];
    const steps = plan({ mode: 'apply', desired: release(m, 2), committedSequence: 1 }, { containers: containers('running'), images: [DIGEST], volumes: [], networks: observedNets }, { deviceId: DEV });
    expect(steps.map((s) => s.kind)).toEqual(['commit', 'remove-network']);
    expect(steps[1]).toEqual({ kind: 'remove-network', name: 'berth-dev-1-old-default-abcdef' });
    const restore = plan({ mode: 'restore', current: r }, { containers: containers('running'), images: [DIGEST], volumes: [], networks: observedNets }, { deviceId: DEV });
    expect(restore).toEqual([]);
  });

  it('a restart: no service that ran is not started again by the periodic reconcile', () => {
    const net0 = [{ name: net, labels: {} }];
    expect(plan({ mode: 'restore', current: r }, { containers: containers('exited', 0), images: [DIGEST], volumes: [], networks: net0 }, { deviceId: DEV })).toEqual([]);
    expect(plan({ mode: 'restore', current: r }, { containers: containers('exited', 1), images: [DIGEST], volumes: [], networks: net0 }, { deviceId: DEV })).toEqual([]);
    // A created one never ran: it starts.
    expect(plan({ mode: 'restore', current: r }, { containers: containers('created'), images: [DIGEST], volumes: [], networks: net0 }, { deviceId: DEV }).map((s) => s.kind)).toContain('start');
  });
});
