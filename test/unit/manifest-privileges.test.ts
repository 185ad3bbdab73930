import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest, formatIssue } from '../../manifests/parse.js';
import type { Manifest } from '../../manifests/model.js';
import { allows, FLEET_BASELINE, formatAllowance, formatPrivilege, lacking, parseAllowance, privilegesOf, type Allowance } from '../../manifests/privileges.js';

function manifest(text: string): Manifest {
  const r = parseManifest(text, 'm.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}
const example = (f: string) => manifest(readFileSync(join(import.meta.dirname, '../../manifests/examples', f), 'utf8'));
function allowance(...entries: string[]): Allowance {
  const r = parseAllowance(entries);
  if ('errors' in r) throw new Error(r.errors.join('\n'));
  return r.allow;
}

describe('privilegesOf', () => {
  it('a plain manifest asks for nothing', () => {
    expect(privilegesOf(example('minimal.yaml'))).toEqual([]);
    expect(privilegesOf(example('stop-then-start.yaml'))).toEqual([]);
  });

  it('lists every key beyond a plain container, normalized, with the services that ask', () => {
    const m = manifest(`name: x
version: 1.0.0
services:
  a:
    image: registry.example.com/a:1
    privileged: true
    devices: ["/dev/ttyUSB0:/dev/zigbee", "/dev/ttyACM0"]
    cap_add: [net_admin]
    cap_drop: [ALL]
    group_add: [dialout]
    volumes: ["/etc/localtime:/etc/localtime:ro", "/run/dbus:/run/dbus"]
    tmpfs: /run
    network_mode: host
    pid: host
    ipc: host
    sysctls: { net.ipv4.ip_forward: 1 }
    security_opt: ["no-new-privileges:true", "apparmor:unconfined"]
  b:
    image: registry.example.com/b:1
    cap_add: [NET_ADMIN]
    ports: ["127.0.0.1:8123:8123", "5683:5683/udp", "9000"]
`);
    expect(privilegesOf(m).map((p) => `${formatPrivilege(p)} (${p.services.join(',')})`)).toEqual([
      'privileged=true (a)',
      'devices=/dev/ttyACM0 (a)',
      'devices=/dev/ttyUSB0 (a)',
      'cap_add=NET_ADMIN (a,b)',
      'group_add=dialout (a)',
      'binds=/etc/localtime:ro (a)',
      'binds=/run/dbus (a)',
      'network_mode=host (a)',
      'pid=host (a)',
      'ipc=host (a)',
      'sysctls=net.ipv4.ip_forward (a)',
      'security_opt=apparmor=unconfined (a)',
      'ports=5683/udp (b)',
      'ports=8123 (b)',
      'ports=ephemeral (b)',
    ]);
  });

  it("the issue's stacks", () => {
    expect(privilegesOf(example('home-assistant.yaml')).map(formatPrivilege)).toEqual([
      'devices=/dev/ttyUSB0',
      'group_add=dialout',
      'binds=/etc/localtime:ro',
      'binds=/run/dbus:ro',
      'binds=/srv/homeassistant/config',
      'binds=/srv/mosquitto/config:ro',
      'network_mode=host',
      'ports=1880',
      'ports=1883',
      'ports=9001',
    ]);
    expect(privilegesOf(example('metrics.yaml')).map(formatPrivilege)).toEqual([
      'cap_add=NET_RAW',
      'binds=/etc/telegraf/telegraf.conf:ro',
      'binds=/proc:ro',
      'binds=/sys:ro',
      'ports=3000',
      'ports=8086',
    ]);
  });
});

describe('grants', () => {
  it('globs for paths, exact names for capabilities, ranges for ports, :ro binds only read-only', () => {
    expect(allows('devices', '/dev/ttyUSB*', '/dev/ttyUSB0')).toBe(true);
    expect(allows('devices', '/dev/ttyUSB*', '/dev/ttyACM0')).toBe(false);
    expect(allows('devices', '/dev/*', '/dev/bus/usb/001')).toBe(false);
    expect(allows('devices', '/dev/**', '/dev/bus/usb/001')).toBe(true);
    expect(allows('binds', '/etc/localtime:ro', '/etc/localtime:ro')).toBe(true);
    expect(allows('binds', '/etc/localtime:ro', '/etc/localtime')).toBe(false);
    expect(allows('binds', '/run/dbus', '/run/dbus:ro')).toBe(true);
    expect(allows('binds', '/srv/**', '/srv/homeassistant/config')).toBe(true);
    expect(allows('cap_add', 'NET_ADMIN', 'NET_ADMIN')).toBe(true);
    expect(allows('cap_add', 'NET_ADMIN', 'NET_RAW')).toBe(false);
    expect(allows('ports', '1883', '1883')).toBe(true);
    expect(allows('ports', '8000-8100', '8080')).toBe(true);
    expect(allows('ports', '8000-8100', '8101')).toBe(false);
    expect(allows('ports', '5683/udp', '5683')).toBe(false);
    expect(allows('ports', '5683', '5683/udp')).toBe(true);
    expect(allows('ports', '*', 'ephemeral')).toBe(true);
    expect(allows('ports', '1-65535', 'ephemeral')).toBe(false);
    expect(allows('sysctls', 'net.ipv4.*', 'net.ipv4.ip_forward')).toBe(true);
  });

  it('a device is granted the union of its policies; what none grants is lacking', () => {
    const ha = privilegesOf(example('home-assistant.yaml'));
    const zigbee = allowance('devices=/dev/ttyUSB*,/dev/ttyACM*', 'group_add=dialout');
    const site = allowance('binds=/etc/localtime:ro,/run/dbus:ro,/srv/**', 'ports=1880,1883,9001');
    expect(lacking(ha, [zigbee, site, FLEET_BASELINE])).toEqual([]);
    expect(lacking(ha, [zigbee, FLEET_BASELINE]).map(formatPrivilege)).toEqual(['binds=/etc/localtime:ro', 'binds=/run/dbus:ro', 'binds=/srv/homeassistant/config', 'binds=/srv/mosquitto/config:ro', 'ports=1880', 'ports=1883', 'ports=9001']);
    expect(lacking(ha, []).map(formatPrivilege)).toContain('network_mode=host');
  });
});

describe('parseAllowance (policies set --allow, and the gateway --allow file)', () => {
  it('reads KEY=VALUE[,VALUE…], a bare privileged, comments and blank lines', () => {
    const r = parseAllowance(['# the installer\'s ceiling', '', 'devices=/dev/ttyUSB*,/dev/ttyACM*', 'cap_add=net_admin', 'privileged', 'ports=1883,8000-8100/tcp']);
    expect(r).toEqual({ allow: { devices: ['/dev/ttyUSB*', '/dev/ttyACM*'], cap_add: ['NET_ADMIN'], privileged: ['true'], ports: ['1883', '8000-8100/tcp'] } });
    expect(formatAllowance((r as { allow: Allowance }).allow)).toEqual(['privileged=true', 'devices=/dev/ttyUSB*,/dev/ttyACM*', 'cap_add=NET_ADMIN', 'ports=1883,8000-8100/tcp']);
  });

  it('refuses unknown keys and bad values, naming the entry', () => {
    expect(parseAllowance(['devices=ttyUSB0', 'capadd=NET_ADMIN', 'cap_add=NET_ADMIM', 'tmpfs=/run', 'ports=http', 'binds=/a/../etc'])).toEqual({
      errors: [
        'entry 1: devices=ttyUSB0: expected an absolute path or glob like /dev/ttyUSB*',
        'entry 2: unknown key "capadd": expected one of privileged, devices, cap_add, group_add, binds, network_mode, pid, ipc, sysctls, security_opt, ports',
        'entry 3: cap_add=NET_ADMIM: "NET_ADMIM" is not a Linux capability (like NET_ADMIN or SYS_RAWIO)',
        'entry 4: unknown key "tmpfs" (tmpfs is memory inside the container, not a privilege: every manifest may use it): expected one of privileged, devices, cap_add, group_add, binds, network_mode, pid, ipc, sysctls, security_opt, ports',
        'entry 5: ports=http: expected a port, a range like 8000-8100, ephemeral or *, optionally /udp or /tcp',
        'entry 6: binds=/a/../etc: expected an absolute gateway path or glob, optionally :ro, like /etc/localtime:ro',
      ],
    });
    expect(parseAllowance(['pid=container'])).toEqual({ errors: ['pid=container: expected host'] });
  });
});
