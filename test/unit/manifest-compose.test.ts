import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatIssue, parseManifest } from '../../manifests/parse.js';
import type { Manifest, Service } from '../../manifests/model.js';

/** The Compose keys of issue 12: every short and long form normalizes as documented, every refusal names its key path. */

function parse(service: string, tail = '', others = ''): ReturnType<typeof parseManifest> {
  const indented = service.split('\n').map((l) => (l ? '    ' + l : l)).join('\n');
  return parseManifest(`name: app\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web:1.0\n${indented}\n${others}${tail}`, 'm.yaml');
}
function ok(service: string, tail = '', others = ''): Manifest {
  const r = parse(service, tail, others);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}
const web = (service: string, tail = '', others = ''): Service => ok(service, tail, others).services.web;
function refused(service: string, tail = '', others = ''): string[] {
  const r = parse(service, tail, others);
  if (r.ok) throw new Error('expected a refusal');
  return r.errors.map((e) => formatIssue({ ...e, line: undefined, column: undefined }));
}

describe('hardware and host keys', () => {
  it('devices: short, with target, with permissions', () => {
    expect(web('devices: [/dev/ttyUSB0, "/dev/ttyUSB1:/dev/zigbee", "/dev/ttyACM0:/dev/zwave:rw", "/dev/null:r"]').devices).toEqual([
      { source: '/dev/ttyUSB0', target: '/dev/ttyUSB0', permissions: 'rwm' },
      { source: '/dev/ttyUSB1', target: '/dev/zigbee', permissions: 'rwm' },
      { source: '/dev/ttyACM0', target: '/dev/zwave', permissions: 'rw' },
      { source: '/dev/null', target: '/dev/null', permissions: 'r' },
    ]);
    expect(refused('devices: ["ttyUSB0"]')[0]).toBe('m.yaml: services.web.devices[0]: device "ttyUSB0" must be an absolute path like /dev/ttyUSB0 (CDI device names are not supported)');
    expect(refused('devices: ["/dev/a:/dev/b:rwx"]')[0]).toBe('m.yaml: services.web.devices[0]: device permissions "rwx" must be some of r, w and m (like rwm)');
  });

  it('group_add, cap_add, cap_drop, privileged', () => {
    const s = web('group_add: [dialout, 20]\ncap_add: [net_admin, CAP_SYS_RAWIO, NET_ADMIN]\ncap_drop: [ALL]\nprivileged: true');
    expect(s.groupAdd).toEqual(['dialout', '20']);
    expect(s.capAdd).toEqual(['NET_ADMIN', 'SYS_RAWIO']);
    expect(s.capDrop).toEqual(['ALL']);
    expect(s.privileged).toBe(true);
    expect(web('privileged: false')).not.toHaveProperty('privileged');
    expect(refused('cap_add: [NET_ADMIM]')[0]).toBe('m.yaml: services.web.cap_add[0]: "NET_ADMIM" is not a Linux capability (like NET_ADMIN or SYS_RAWIO)');
  });

  it('bind mounts: short (creates the host path), long with bind.create_host_path, :ro', () => {
    const s = web('volumes: ["/etc/localtime:/etc/localtime:ro", "/run/dbus/:/run/dbus", { type: bind, source: /proc, target: /host/proc, read_only: true }, { type: bind, source: /srv/x, target: /x, bind: { create_host_path: true } }]');
    expect(s.binds).toEqual([
      { source: '/etc/localtime', target: '/etc/localtime', readOnly: true, createHostPath: true },
      { source: '/run/dbus', target: '/run/dbus', readOnly: false, createHostPath: true },
      { source: '/proc', target: '/host/proc', readOnly: true, createHostPath: false },
      { source: '/srv/x', target: '/x', readOnly: false, createHostPath: true },
    ]);
    expect(s.volumes).toEqual([]);
    expect(refused('volumes: ["~/conf:/conf"]')[0]).toContain("services.web.volumes[0]: bind source \"~/conf\" is relative to the author's machine");
    expect(refused('volumes: [{ type: bind, source: /a/../etc, target: /x }]')[0]).toBe('m.yaml: services.web.volumes[0].source: bind source "/a/../etc" must not contain ..');
    expect(refused('volumes: [{ type: bind, target: /x }]')[0]).toBe('m.yaml: services.web.volumes[0].source: required: expected the gateway path to mount');
    expect(refused('volumes: [{ type: volume, source: data, target: /x, bind: { create_host_path: true } }]', 'volumes: { data: {} }\n')[0]).toBe('m.yaml: services.web.volumes[0].bind: bind options need type: bind');
    expect(refused('volumes: [{ type: bind, source: /a, target: /x, bind: { propagation: rshared } }]')[0]).toContain('services.web.volumes[0].bind.propagation: not supported (mount propagation');
    expect(refused('volumes: ["/a:/b:z"]')[0]).toBe('m.yaml: services.web.volumes[0]: mount option "z" is not supported: expected ro or rw');
  });

  it('tmpfs: a string, a list, options, and long-form volumes of type tmpfs', () => {
    expect(web('tmpfs: /run').tmpfs).toEqual([{ target: '/run' }]);
    expect(web('tmpfs: ["/run:size=64m,mode=1777", /tmp]\nvolumes: [{ type: tmpfs, target: /cache, tmpfs: { size: 16m, mode: 755 } }]').tmpfs).toEqual([
      { target: '/run', sizeBytes: 64 * 1024 ** 2, mode: 0o1777 },
      { target: '/tmp' },
      { target: '/cache', sizeBytes: 16 * 1024 ** 2, mode: 0o755 },
    ]);
    expect(refused('tmpfs: ["/run:noexec"]')[0]).toBe('m.yaml: services.web.tmpfs[0]: tmpfs option "noexec" is not supported: expected size=SIZE and mode=OCTAL');
    expect(refused('tmpfs: ["/run:size=lots"]')[0]).toBe('m.yaml: services.web.tmpfs[0]: tmpfs size "lots" is not a size like 64m');
    expect(refused('volumes: [{ type: tmpfs, source: x, target: /c }]')[0]).toBe('m.yaml: services.web.volumes[0].source: a tmpfs mount has no source');
  });

  it('sysctls (map or list), ulimits (number or soft/hard), shm_size', () => {
    expect(web('sysctls: { net.core.somaxconn: 1024 }').sysctls).toEqual({ 'net.core.somaxconn': '1024' });
    expect(web('sysctls: ["net.ipv4.ip_forward=1"]').sysctls).toEqual({ 'net.ipv4.ip_forward': '1' });
    expect(web('ulimits: { nofile: { soft: 1024, hard: 4096 }, nproc: 512 }').ulimits).toEqual({ nofile: { soft: 1024, hard: 4096 }, nproc: { soft: 512, hard: 512 } });
    expect(web('shm_size: 256m').shmSizeBytes).toBe(256 * 1024 ** 2);
    expect(refused('ulimits: { nofile: { soft: 10, hard: 5 } }')[0]).toBe('m.yaml: services.web.ulimits.nofile: soft 10 is above hard 5');
    expect(refused('ulimits: { files: 10 }')[0]).toContain('services.web.ulimits.files: ');
    expect(refused('sysctls: ["kernel"]')[0]).toBe('m.yaml: services.web.sysctls[0]: expected NAME=VALUE, got "kernel"');
  });

  it('pid, ipc, security_opt, read_only, init', () => {
    const s = web('pid: host\nipc: shareable\nsecurity_opt: ["no-new-privileges:true", "apparmor:unconfined", "seccomp=unconfined"]\nread_only: true\ninit: false');
    expect(s).toMatchObject({ pid: 'host', ipc: 'shareable', securityOpt: ['no-new-privileges=true', 'apparmor=unconfined', 'seccomp=unconfined'], readOnly: true, init: false });
    expect(web('init: true')).not.toHaveProperty('init');
    expect(refused('pid: "service:db"')[0]).toBe('m.yaml: services.web.pid: only pid: host is supported (sharing another container\'s PID namespace is not), got "service:db"');
    expect(refused('security_opt: ["seccomp=/home/me/profile.json"]')[0]).toContain("services.web.security_opt[0]: seccomp=/home/me/profile.json: a profile file lives on the author's machine");
  });

  it('user, working_dir, entrypoint, stop_signal, stop_grace_period, mem_reservation, cpuset', () => {
    const s = web('user: "1000:20"\nworking_dir: /srv\nentrypoint: /init --quiet\nstop_signal: INT\nstop_grace_period: 1m\nmem_reservation: 64m\ncpuset: "0-1"');
    expect(s).toMatchObject({ user: '1000:20', workingDir: '/srv', entrypoint: ['/init', '--quiet'], stopSignal: 'SIGINT', stopGracePeriodMs: 60_000, memoryReservationBytes: 64 * 1024 ** 2, cpuset: '0-1' });
    expect(web('deploy: { resources: { reservations: { memory: 32m } } }').memoryReservationBytes).toBe(32 * 1024 ** 2);
    expect(refused('cpuset: "0-"')[0]).toBe('m.yaml: services.web.cpuset: expected CPUs like 0-3 or 0,1, got "0-"');
    expect(refused('mem_reservation: 1m\ndeploy: { resources: { reservations: { memory: 1m } } }')[0]).toBe('m.yaml: services.web.mem_reservation: conflicts with deploy.resources.reservations.memory; set one of them');
    expect(refused('deploy: { resources: { reservations: { cpus: "1" } } }')[0]).toContain('services.web.deploy.resources.reservations.cpus: not supported');
  });

  it('restart: on-failure:N', () => {
    expect(web('restart: "on-failure:5"')).toMatchObject({ restart: 'on-failure', restartMaxRetries: 5 });
    expect(web('restart: on-failure')).not.toHaveProperty('restartMaxRetries');
  });

  it('logging: driver and max-size / max-file', () => {
    expect(web('logging: { driver: json-file, options: { max-size: 10m, max-file: "3" } }').logging).toEqual({ driver: 'json-file', maxSizeBytes: 10 * 1024 ** 2, maxFile: 3 });
    expect(web('logging: { options: { max-size: 1m } }').logging).toEqual({ driver: 'json-file', maxSizeBytes: 1024 ** 2 });
    expect(web('logging: { driver: journald }').logging).toEqual({ driver: 'journald' });
    expect(refused('logging: { driver: syslog }')[0]).toContain('services.web.logging.driver: expected json-file, local, journald or none');
    expect(refused('logging: { driver: none, options: { max-size: 1m } }')[0]).toBe('m.yaml: services.web.logging.options: max-size and max-file apply to the json-file and local drivers, not none');
    expect(refused('logging: { options: { compress: "true" } }')[0]).toContain('services.web.logging.options.compress: not supported');
  });
});

describe('networking keys', () => {
  it('a service with neither network_mode nor networks joins the default network, as in Compose', () => {
    const m = ok('');
    expect(m.services.web).toMatchObject({ networkMode: 'networks', networks: { default: { aliases: [] } } });
    expect(m.networks).toEqual({ default: {} });
    expect(ok('network_mode: host').networks).toBeUndefined();
  });

  it('ports: short forms with host IP, protocol and ranges', () => {
    expect(web('ports: [3000, "8080:80", "127.0.0.1:1883:1883", "127.0.0.1::5000", "6060:6060/udp", "9090-9091:8080-8081", "[::1]:6001:6001", "4000-4001"]').ports).toEqual([
      { target: 3000, protocol: 'tcp' },
      { target: 80, published: 8080, protocol: 'tcp' },
      { target: 1883, published: 1883, hostIp: '127.0.0.1', protocol: 'tcp' },
      { target: 5000, hostIp: '127.0.0.1', protocol: 'tcp' },
      { target: 6060, published: 6060, protocol: 'udp' },
      { target: 8080, published: 9090, protocol: 'tcp' },
      { target: 8081, published: 9091, protocol: 'tcp' },
      { target: 6001, published: 6001, hostIp: '::1', protocol: 'tcp' },
      { target: 4000, protocol: 'tcp' },
      { target: 4001, protocol: 'tcp' },
    ]);
  });

  it('ports: long form', () => {
    expect(web('ports: [{ target: 80, published: "8080", host_ip: 127.0.0.1, protocol: udp, mode: host }, { target: 81 }]').ports).toEqual([
      { target: 80, published: 8080, hostIp: '127.0.0.1', protocol: 'udp' },
      { target: 81, protocol: 'tcp' },
    ]);
  });

  it('ports: refusals name the entry', () => {
    expect(refused('ports: ["8080:80/sctp"]')[0]).toBe('m.yaml: services.web.ports[0]: protocol "sctp" in "8080:80/sctp" is not supported: expected tcp or udp');
    expect(refused('ports: ["70000:80"]')[0]).toBe('m.yaml: services.web.ports[0]: host port 70000 is outside 1-65535');
    expect(refused('ports: ["9090-9092:8080-8081"]')[0]).toContain('services.web.ports[0]: "9090-9092:8080-8081" maps 3 host port(s) to 2 container port(s)');
    expect(refused('ports: ["999.1.1.1:80:80"]')[0]).toBe('m.yaml: services.web.ports[0]: host address "999.1.1.1" is not an IPv4 or IPv6 address');
    expect(refused('ports: ["80:80", "80:81"]')[0]).toBe('m.yaml: services.web.ports: host port 80/tcp is published twice');
    expect(refused('ports: [{ target: 80, mode: ingress }]')[0]).toContain('services.web.ports[0].mode: only mode: host is supported');
    expect(refused('network_mode: host\nports: ["80:80"]')[0]).toBe('m.yaml: services.web.ports: ports has no effect with network_mode: host (Docker refuses the combination); the service listens on the gateway directly');
  });

  it('expose', () => {
    expect(web('expose: [80, "9000-9001", "53/udp"]').expose).toEqual([
      { port: 80, protocol: 'tcp' },
      { port: 9000, protocol: 'tcp' },
      { port: 9001, protocol: 'tcp' },
      { port: 53, protocol: 'udp' },
    ]);
  });

  it('networks: list or map with aliases, declared at the top level', () => {
    const m = ok('networks: { back: { aliases: [api] }, default: }', 'networks: { back: { internal: true }, unused: {} }\n');
    expect(m.services.web.networks).toEqual({ back: { aliases: ['api'] }, default: { aliases: [] } });
    expect(m.networks).toEqual({ back: { internal: true }, default: {} });
    expect(ok('networks: [front]', 'networks: { front: }\n').services.web.networks).toEqual({ front: { aliases: [] } });
    expect(refused('networks: [back]')[0]).toBe('m.yaml: services.web.networks.back: network "back" is not declared under top-level networks (add networks: {back: {}})');
    expect(refused('networks: [front]', 'networks: { front: { external: true } }\n')[0]).toBe('m.yaml: networks.front.external: not supported (Berth creates and removes the networks of each release itself)');
    expect(refused('networks: [front]', 'networks: { front: { driver: macvlan } }\n')[0]).toContain('networks.front.driver: only driver: bridge is supported');
    expect(refused('network_mode: host\nnetworks: [default]')[0]).toBe('m.yaml: services.web.networks: conflicts with network_mode: host; a service either joins networks or uses a network mode');
  });

  it('network_mode: host, none, bridge, service:NAME (which also orders the start)', () => {
    for (const mode of ['host', 'none', 'bridge'] as const) expect(web(`network_mode: ${mode}`).networkMode).toBe(mode);
    const m = ok('network_mode: "service:db"', '', '  db: { image: registry.example.com/acme/db:1 }\n');
    expect(m.services.web).toMatchObject({ networkMode: 'service:db', dependsOn: { db: { condition: 'service_started' } } });
    expect(refused('network_mode: "service:nope"')[0]).toBe('m.yaml: services.web.network_mode: unknown service "nope" (services: web)');
    expect(refused('network_mode: "service:web"')[0]).toBe('m.yaml: services.web.network_mode: "web" cannot share its own namespace');
    expect(refused('network_mode: "service:db"\nhostname: x', '', '  db: { image: registry.example.com/acme/db:1 }\n')[0]).toContain('services.web.hostname: hostname has no effect with network_mode: service:db');
  });

  it('hostname, extra_hosts (list or map), dns, dns_search', () => {
    const s = web('hostname: hub\nextra_hosts: ["gw:192.0.2.1", "v6=::1", "[2001:db8::1]=x"]\ndns: 192.0.2.53\ndns_search: [lan]'.replace(', "[2001:db8::1]=x"', ''));
    expect(s).toMatchObject({ hostname: 'hub', extraHosts: ['gw:192.0.2.1', 'v6:::1'], dns: ['192.0.2.53'], dnsSearch: ['lan'] });
    expect(web('extra_hosts: { gw: 192.0.2.1, host: host-gateway }').extraHosts).toEqual(['gw:192.0.2.1', 'host:host-gateway']);
    expect(refused('extra_hosts: ["gw:nowhere"]')[0]).toBe('m.yaml: services.web.extra_hosts[0]: host address "nowhere" is not an IPv4 or IPv6 address');
    expect(refused('dns: [dns.example.com]')[0]).toBe('m.yaml: services.web.dns[0]: host address "dns.example.com" is not an IPv4 or IPv6 address');
    expect(refused('network_mode: host\ndns: [192.0.2.53]')[0]).toContain('services.web.dns: dns has no effect with network_mode: host');
  });
});

describe('files people already have', () => {
  it('container_name becomes hostname and network alias, with a warning', () => {
    const r = parse('container_name: mosquitto');
    if (!r.ok) throw new Error('refused');
    expect(r.manifest.services.web).toMatchObject({ hostname: 'mosquitto', networks: { default: { aliases: ['mosquitto'] } } });
    expect(r.warnings.map(formatIssue)).toEqual([
      'm.yaml:6:5: services.web.container_name: Berth names the container itself; "mosquitto" becomes the service\'s hostname and network alias, so other services still reach it by that name',
    ]);
  });

  it('pull_policy is accepted and ignored with a warning; platform and labels are kept', () => {
    const r = parse('pull_policy: always\nplatform: linux/arm64\nlabels: { a: b }');
    if (!r.ok) throw new Error('refused');
    expect(r.manifest.services.web).toMatchObject({ platform: 'linux/arm64', labels: { a: 'b' } });
    expect(r.manifest.services.web).not.toHaveProperty('pullPolicy');
    expect(r.warnings[0].message).toContain('ignored: Berth pins every image by digest');
  });

  it('profiles, build, extends and env_file stay refused with their reason', () => {
    expect(refused('profiles: [debug]')[0]).toBe('m.yaml: services.web.profiles: not supported (every service of a manifest runs on every gateway it is rolled out to; make a manifest per variant)');
    expect(refused('extends: { file: common.yaml, service: base }')[0]).toContain("services.web.extends: not supported (extends reads another file on the author's machine");
    expect(refused('env_file: .env')[0]).toContain("services.web.env_file: not supported (an env file lives on the author's machine");
  });

  it('a typo gets "did you mean", at every level', () => {
    expect(refused('enviroment: { A: 1 }')).toEqual(['m.yaml: services.web.enviroment: not supported; did you mean environment?']);
    expect(refused('healthcheck: { test: "true", intervall: 5s }')).toEqual(['m.yaml: services.web.healthcheck.intervall: not supported; did you mean interval?']);
    expect(refused('', 'volume: {}\n')).toEqual(['m.yaml: volume: not supported; did you mean volumes?']);
    expect(refused('frobnicate: 1')).toEqual(['m.yaml: services.web.frobnicate: not supported']);
  });

  it('schema errors carry line:column', () => {
    const r = parse('cap_add: [NET_ADMIN]\nports:\n  - "80:80"\n  - "70000:1"');
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.errors.map(formatIssue)).toEqual(['m.yaml:9:9: services.web.ports[1]: host port 70000 is outside 1-65535']);
  });
});

describe("the issue's two everyday stacks (manifests/examples)", () => {
  const load = (f: string) => {
    const r = parseManifest(readFileSync(join(import.meta.dirname, '../../manifests/examples', f), 'utf8'), f);
    if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
    return r;
  };

  it('Home Assistant + Mosquitto + Node-RED validates, with its container_name warnings', () => {
    const r = load('home-assistant.yaml');
    const { homeassistant, mosquitto, nodered } = r.manifest.services;
    expect(homeassistant).toMatchObject({ networkMode: 'host', binds: expect.arrayContaining([{ source: '/etc/localtime', target: '/etc/localtime', readOnly: true, createHostPath: true }]) });
    expect(mosquitto).toMatchObject({ networkMode: 'networks', networks: { default: { aliases: ['mosquitto'] } }, tmpfs: [{ target: '/mosquitto/log', sizeBytes: 16 * 1024 ** 2 }] });
    expect(nodered).toMatchObject({ devices: [{ source: '/dev/ttyUSB0', target: '/dev/ttyUSB0', permissions: 'rwm' }], groupAdd: ['dialout'], logging: { driver: 'json-file', maxSizeBytes: 10 * 1024 ** 2 } });
    expect(r.warnings.map((w) => w.path)).toEqual(['services.homeassistant.container_name', 'services.mosquitto.container_name']);
  });

  it('InfluxDB + Telegraf + Grafana validates on its own network', () => {
    const r = load('metrics.yaml');
    const { telegraf, grafana, influxdb } = r.manifest.services;
    expect(r.manifest.networks).toEqual({ monitoring: {} });
    expect(telegraf).toMatchObject({ capAdd: ['NET_RAW'], readOnly: true, extraHosts: ['upstream-ntp:192.0.2.123'], restart: 'on-failure', restartMaxRetries: 5, logging: { driver: 'local', maxFile: 2 } });
    expect(telegraf).not.toHaveProperty('init');
    expect(influxdb.ulimits).toEqual({ nofile: { soft: 32768, hard: 65536 } });
    expect(grafana.ports).toEqual([{ target: 3000, published: 3000, protocol: 'tcp' }]);
    expect(r.warnings).toEqual([]);
  });
});
