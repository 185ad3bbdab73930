import { isIP } from 'node:net';
import type { BindMount, DeviceMapping, PortBinding, TmpfsMount, VolumeMount } from './model.js';
import { GrammarError, parseSize } from '../common/grammar.js';

/**
 * Compose's short string forms of the host-facing keys (ports, devices, volumes, tmpfs,
 * extra_hosts, capabilities), split the way Compose splits them. Each parser returns the value or
 * an error sentence, never throws, so the schema reports every bad entry of a file at once.
 */
export type Parsed<T> = { value: T } | { error: string };

const q = (s: string) => JSON.stringify(s);

/** More ports than this in one entry is a typo (`1-65535`), not a gateway's service. */
export const MAX_PORTS_PER_ENTRY = 1024;

function portNumber(text: string, what: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(text)) return { error: `${what} ${q(text)} is not a port number` };
  const n = Number(text);
  return n >= 1 && n <= 65535 ? { value: n } : { error: `${what} ${n} is outside 1-65535` };
}

/** `8000` or `8000-8010` → the list of ports. */
export function portRange(text: string, what: string): Parsed<number[]> {
  const [a, b, ...rest] = text.split('-');
  if (rest.length) return { error: `${what} ${q(text)} is not a port or a range like 8000-8010` };
  const from = portNumber(a, what);
  if ('error' in from) return from;
  if (b === undefined) return { value: [from.value] };
  const to = portNumber(b, what);
  if ('error' in to) return to;
  if (to.value < from.value) return { error: `${what} range ${q(text)} ends before it starts` };
  if (to.value - from.value + 1 > MAX_PORTS_PER_ENTRY) return { error: `${what} range ${q(text)} has more than ${MAX_PORTS_PER_ENTRY} ports` };
  return { value: Array.from({ length: to.value - from.value + 1 }, (_, i) => from.value + i) };
}

export function hostAddress(text: string): Parsed<string> {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return isIP(bare) ? { value: bare } : { error: `host address ${q(text)} is not an IPv4 or IPv6 address` };
}

/**
 * Pairs host ports with container ports: equal-length ranges pair one to one; no host port means
 * the engine picks one per container port.
 */
export function bindPorts(targets: number[], published: number[] | undefined, hostIp: string | undefined, protocol: 'tcp' | 'udp', spec: string): Parsed<PortBinding[]> {
  if (published && published.length !== targets.length) {
    return { error: `${q(spec)} maps ${published.length} host port(s) to ${targets.length} container port(s); the ranges must have the same length` };
  }
  return {
    value: targets.map((target, i) => {
      const b: PortBinding = { target, protocol };
      if (published) b.published = published[i];
      if (hostIp !== undefined) b.hostIp = hostIp;
      return b;
    }),
  };
}

/** `[HOST_IP:][HOST_PORTS:]CONTAINER_PORTS[/PROTOCOL]`, with IPv6 host addresses in brackets. */
export function parsePortShort(spec: string): Parsed<PortBinding[]> {
  let rest = spec.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') return { error: `protocol ${q(p)} in ${q(spec)} is not supported: expected tcp or udp` };
    protocol = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']:');
    if (end < 0) return { error: `${q(spec)}: expected [IPv6]:HOST:CONTAINER` };
    hostIp = rest.slice(1, end);
    rest = rest.slice(end + 2);
  }
  const parts = rest.split(':');
  if (parts.length > 3 || (hostIp !== undefined && parts.length !== 2)) return { error: `${q(spec)}: expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]` };
  if (parts.length === 3) hostIp = parts.shift();
  if (hostIp !== undefined) {
    const ip = hostAddress(hostIp);
    if ('error' in ip) return ip;
    hostIp = ip.value;
  }
  const containerPart = parts.pop() ?? '';
  const hostPart = parts.pop();
  const targets = portRange(containerPart, 'container port');
  if ('error' in targets) return targets;
  let published: number[] | undefined;
  if (hostPart !== undefined && hostPart !== '') {
    const p = portRange(hostPart, 'host port');
    if ('error' in p) return p;
    published = p.value;
  }
  return bindPorts(targets.value, published, hostIp, protocol, spec);
}

/** `/dev/ttyUSB0`, `/dev/ttyUSB0:/dev/zigbee`, `/dev/ttyUSB0:/dev/zigbee:rwm`, `/dev/ttyUSB0:rw`. */
export function parseDevice(spec: string): Parsed<DeviceMapping> {
  const parts = spec.split(':');
  if (parts.length > 3) return { error: `${q(spec)}: expected /dev/HOST[:/dev/CONTAINER[:rwm]]` };
  const [source] = parts;
  let target = source;
  let permissions = 'rwm';
  if (parts.length === 2 && isPermissions(parts[1])) permissions = parts[1];
  else if (parts.length >= 2) target = parts[1];
  if (parts.length === 3) permissions = parts[2];
  if (!source.startsWith('/')) return { error: `device ${q(source)} must be an absolute path like /dev/ttyUSB0 (CDI device names are not supported)` };
  if (!target.startsWith('/')) return { error: `device target ${q(target)} must be an absolute path` };
  if (!isPermissions(permissions)) return { error: `device permissions ${q(permissions)} must be some of r, w and m (like rwm)` };
  return { value: { source, target, permissions } };
}

function isPermissions(s: string): boolean {
  return /^(?!.*(.).*\1)[rwm]{1,3}$/.test(s);
}

export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export type ShortMount = { kind: 'volume'; mount: VolumeMount } | { kind: 'bind'; mount: BindMount };

/**
 * `name:/path[:ro|rw]` (a named volume) or `/host/path:/path[:ro|rw]` (a bind mount, whose host
 * directory is created when missing, as Compose does for the short form).
 */
export function parseVolumeShort(spec: string): Parsed<ShortMount> {
  const parts = spec.split(':');
  if (parts.length === 1) return { error: `anonymous volume ${q(spec)} is not supported: name it (name:${spec}) and declare it under top-level volumes` };
  if (parts.length > 3) return { error: `expected name:/path[:ro] or /host/path:/path[:ro], got ${q(spec)}` };
  const [source, target, mode] = parts;
  if (!target.startsWith('/')) return { error: `mount target ${q(target)} must be an absolute path` };
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return { error: `mount option ${q(mode)} is not supported: expected ro or rw` };
  const readOnly = mode === 'ro';
  if (isHostPath(source)) {
    const bad = hostPathError(source);
    if (bad) return { error: bad };
    return { value: { kind: 'bind', mount: { source: normalizePath(source), target, readOnly, createHostPath: true } } };
  }
  if (!VOLUME_NAME_RE.test(source)) return { error: `volume name ${q(source)} must be letters, digits, _ . - (starting with a letter or digit)` };
  return { value: { kind: 'volume', mount: { source, target, readOnly } } };
}

export function isHostPath(source: string): boolean {
  return source.startsWith('/') || source.startsWith('.') || source.startsWith('~') || source.startsWith('$');
}

/** Why a bind source cannot be used on a gateway, or undefined when it can. */
export function hostPathError(source: string): string | undefined {
  if (source.startsWith('.') || source.startsWith('~')) {
    return `bind source ${q(source)} is relative to the author's machine; a gateway has no such directory: write the absolute path on the gateway`;
  }
  if (!source.startsWith('/')) return `bind source ${q(source)} must be an absolute path on the gateway`;
  if (source.split('/').some((seg) => seg === '..')) return `bind source ${q(source)} must not contain ..`;
  return undefined;
}

/** `/run/dbus/` → `/run/dbus`, `//a///b` → `/a/b`: one spelling per path, so grants and digests compare. */
export function normalizePath(p: string): string {
  const s = p.replace(/\/+/g, '/');
  return s.length > 1 ? s.replace(/\/$/, '') : s;
}

/** `/run` or `/run:size=64m,mode=1777`. */
export function parseTmpfsShort(spec: string): Parsed<TmpfsMount> {
  const colon = spec.indexOf(':');
  const target = colon < 0 ? spec : spec.slice(0, colon);
  if (!target.startsWith('/')) return { error: `tmpfs target ${q(target)} must be an absolute path` };
  const out: TmpfsMount = { target };
  if (colon < 0) return { value: out };
  for (const opt of spec.slice(colon + 1).split(',')) {
    const [k, v] = opt.split('=');
    if (k === 'size' && v !== undefined) {
      try {
        out.sizeBytes = parseSize(v);
      } catch (err) {
        if (!(err instanceof GrammarError)) throw err;
        return { error: `tmpfs size ${q(v)} is not a size like 64m` };
      }
    } else if (k === 'mode' && v !== undefined) {
      const mode = parseMode(v);
      if ('error' in mode) return mode;
      out.mode = mode.value;
    } else {
      return { error: `tmpfs option ${q(opt)} is not supported: expected size=SIZE and mode=OCTAL` };
    }
  }
  return { value: out };
}

/** An octal permission mode like `1777` or `0755` (a YAML number is read as its decimal digits). */
export function parseMode(v: string | number): Parsed<number> {
  const s = String(v);
  if (!/^0?[0-7]{3,4}$/.test(s)) return { error: `mode ${q(s)} is not an octal mode like 1777 or 0755` };
  return { value: parseInt(s, 8) };
}

/** `host:ip`, `host=ip`; the IP may be IPv6 (bare or in brackets) or Docker's `host-gateway`. */
export function parseExtraHost(spec: string): Parsed<string> {
  const m = /^([^:=\s]+)[:=](.+)$/.exec(spec.trim());
  if (!m) return { error: `${q(spec)}: expected HOST:IP or HOST=IP` };
  return extraHost(m[1], m[2]);
}

export function extraHost(host: string, ip: string): Parsed<string> {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) return { error: `${q(host)} is not a host name` };
  if (ip === 'host-gateway') return { value: `${host}:${ip}` };
  const addr = hostAddress(ip);
  return 'error' in addr ? addr : { value: `${host}:${addr.value}` };
}

/** Linux capabilities (man 7 capabilities), the names Docker accepts without the CAP_ prefix. */
export const CAPABILITIES = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'BPF', 'CHECKPOINT_RESTORE', 'CHOWN', 'DAC_OVERRIDE',
  'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'IPC_LOCK', 'IPC_OWNER', 'KILL', 'LEASE', 'LINUX_IMMUTABLE', 'MAC_ADMIN',
  'MAC_OVERRIDE', 'MKNOD', 'NET_ADMIN', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_RAW', 'PERFMON', 'SETFCAP', 'SETGID',
  'SETPCAP', 'SETUID', 'SYSLOG', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_CHROOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_PACCT',
  'SYS_PTRACE', 'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'WAKE_ALARM', 'ALL',
] as const;

/** `net_admin`, `CAP_NET_ADMIN` → `NET_ADMIN`. */
export function parseCapability(name: string): Parsed<string> {
  const c = name.trim().toUpperCase().replace(/^CAP_/, '');
  return (CAPABILITIES as readonly string[]).includes(c) ? { value: c } : { error: `${q(name)} is not a Linux capability (like NET_ADMIN or SYS_RAWIO)` };
}

/** Docker's `--ulimit` names. */
export const ULIMITS = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'] as const;

/**
 * `no-new-privileges[:true]`, `apparmor=PROFILE`, `seccomp=unconfined`, `label=disable|user:…`,
 * `systempaths=unconfined`, with `:` or `=`; normalized to `key=value`. A seccomp profile file is
 * refused: it lives on the author's machine.
 */
export function parseSecurityOpt(spec: string): Parsed<string> {
  const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(spec.trim());
  const key = m?.[1];
  const value = m?.[2];
  if (key === 'no-new-privileges') {
    if (value === undefined || value === 'true') return { value: 'no-new-privileges=true' };
    if (value === 'false') return { value: 'no-new-privileges=false' };
  } else if (key === 'seccomp' && value !== undefined) {
    if (value === 'unconfined') return { value: 'seccomp=unconfined' };
    return { error: `seccomp=${value}: a profile file lives on the author's machine; only seccomp=unconfined (or the default) is supported` };
  } else if ((key === 'apparmor' || key === 'label' || key === 'systempaths') && value) {
    if (key === 'systempaths' && value !== 'unconfined') return { error: `expected systempaths=unconfined, got ${q(spec)}` };
    return { value: `${key}=${value}` };
  }
  return { error: `${q(spec)}: expected no-new-privileges[:true], apparmor=PROFILE, seccomp=unconfined, label=… or systempaths=unconfined` };
}

/** `SIGTERM`, `TERM`, `SIGRTMIN+3`, `9` → Docker's spelling (`SIG…`, or the number). */
export function parseSignal(spec: string): Parsed<string> {
  const s = spec.trim().toUpperCase();
  if (/^\d{1,2}$/.test(s)) return { value: s };
  const name = s.startsWith('SIG') ? s : `SIG${s}`;
  return /^SIG[A-Z]+[0-9]*(?:[+-]\d+)?$/.test(name) ? { value: name } : { error: `${q(spec)} is not a signal name like SIGTERM` };
}
