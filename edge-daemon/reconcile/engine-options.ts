import type { ContainerCreateOptions, HostConfig } from 'dockerode';
import type { Service } from '../../manifests/model.js';
import type { SecretMountSpec } from '../secrets/mounts.js';

/**
 * The Compose keys beyond a plain container, mapped to the Docker Engine API (v1.41, Docker 20.10
 * and later) the way `docker compose` maps them. Pure: spec.ts assembles these with the names and
 * labels that are the daemon's own.
 */

/** Where a service's namespaces and networks point once engine names are known (see spec.ts). */
export interface ServiceContext {
  /** Manifest network name → engine network name, for the networks the service joins. */
  networks: Record<string, string>;
  /** Service name → container name, for `service:NAME` network or IPC modes. */
  peers: Record<string, string>;
  /** Secret files bind-mounted read-only at /run/secrets (edge-daemon/secrets); absent without secrets. */
  secrets?: SecretMountSpec[];
}

export const EMPTY_CONTEXT: ServiceContext = { networks: {}, peers: {} };

function shared(mode: string, ctx: ServiceContext): string {
  const peer = /^service:(.+)$/.exec(mode)?.[1];
  if (peer === undefined) return mode;
  const name = ctx.peers[peer];
  if (!name) throw new Error(`service ${peer} has no container to share a namespace with`);
  return `container:${name}`;
}

/** The engine's network mode: a mode as such, or the first (by name) user network the service joins. */
export function engineNetworkMode(s: Service, ctx: ServiceContext): string {
  if (s.networkMode !== 'networks') return shared(s.networkMode, ctx);
  const first = Object.keys(s.networks ?? {}).sort()[0];
  const engine = first === undefined ? undefined : ctx.networks[first];
  if (!engine) throw new Error(`network ${first ?? '(none)'} has no engine network`);
  return engine;
}

/** Every network the container must be attached to, with the aliases it answers to there. */
export function endpoints(serviceName: string, s: Service, ctx: ServiceContext): { network: string; aliases: string[] }[] {
  if (s.networkMode !== 'networks') return [];
  return Object.entries(s.networks ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([net, a]) => ({ network: ctx.networks[net], aliases: [...new Set([serviceName, ...a.aliases])] }));
}

function portKey(port: number, protocol: string): string {
  return `${port}/${protocol}`;
}

/** Config-level fields (outside HostConfig). */
export function configFields(s: Service): Partial<ContainerCreateOptions> {
  const exposed: Record<string, Record<string, never>> = {};
  for (const e of s.expose ?? []) exposed[portKey(e.port, e.protocol)] = {};
  for (const p of s.ports ?? []) exposed[portKey(p.target, p.protocol)] = {};
  return {
    ExposedPorts: Object.keys(exposed).length ? exposed : undefined,
    Hostname: s.hostname,
    StopSignal: s.stopSignal,
  };
}

/** `size=…,mode=…` for HostConfig.Tmpfs (the kernel's tmpfs options). */
function tmpfsOptions(t: { sizeBytes?: number; mode?: number }): string {
  const opts: string[] = [];
  if (t.sizeBytes !== undefined) opts.push(`size=${t.sizeBytes}`);
  if (t.mode !== undefined) opts.push(`mode=${t.mode.toString(8)}`);
  return opts.join(',');
}

/**
 * HostConfig fields. Bind mounts with create_host_path go through `Binds` (the engine creates a
 * missing source directory); the others through `Mounts` of type bind, which the engine refuses
 * when the source is missing — Compose's two behaviours.
 */
export function hostFields(s: Service, ctx: ServiceContext): Partial<HostConfig> {
  const binds = s.binds ?? [];
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of s.ports ?? []) {
    const key = portKey(p.target, p.protocol);
    (portBindings[key] ??= []).push({ HostIp: p.hostIp ?? '', HostPort: p.published === undefined ? '' : String(p.published) });
  }
  const logConfig: Record<string, string> = {};
  if (s.logging?.maxSizeBytes !== undefined) logConfig['max-size'] = String(s.logging.maxSizeBytes);
  if (s.logging?.maxFile !== undefined) logConfig['max-file'] = String(s.logging.maxFile);
  const created = binds.filter((b) => b.createHostPath);
  return {
    Binds: created.length ? created.map((b) => `${b.source}:${b.target}${b.readOnly ? ':ro' : ''}`) : undefined,
    // Named volumes are added by spec.ts; these are the binds whose source must already exist.
    Mounts: binds.filter((b) => !b.createHostPath).map((b) => ({ Type: 'bind' as const, Source: b.source, Target: b.target, ReadOnly: b.readOnly })),
    Tmpfs: s.tmpfs?.length ? Object.fromEntries(s.tmpfs.map((t) => [t.target, tmpfsOptions(t)])) : undefined,
    Devices: s.devices?.map((d) => ({ PathOnHost: d.source, PathInContainer: d.target, CgroupPermissions: d.permissions })),
    GroupAdd: s.groupAdd,
    CapAdd: s.capAdd,
    CapDrop: s.capDrop,
    Privileged: s.privileged,
    Sysctls: s.sysctls,
    Ulimits: s.ulimits ? Object.entries(s.ulimits).map(([Name, u]) => ({ Name, Soft: u.soft, Hard: u.hard })) : undefined,
    ShmSize: s.shmSizeBytes,
    PidMode: s.pid,
    IpcMode: s.ipc === undefined ? undefined : shared(s.ipc, ctx),
    SecurityOpt: s.securityOpt,
    ReadonlyRootfs: s.readOnly,
    // busybox and many small images run a PID 1 that ignores SIGTERM; tini forwards it.
    Init: s.init ?? true,
    ExtraHosts: s.extraHosts,
    Dns: s.dns,
    DnsSearch: s.dnsSearch,
    MemoryReservation: s.memoryReservationBytes,
    CpusetCpus: s.cpuset,
    PortBindings: Object.keys(portBindings).length ? portBindings : undefined,
    LogConfig: s.logging ? { Type: s.logging.driver, Config: logConfig } : undefined,
    NetworkMode: engineNetworkMode(s, ctx),
  };
}
