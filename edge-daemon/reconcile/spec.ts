import type { ContainerCreateOptions } from 'dockerode';
import { canonicalDigest } from '../../manifests/canonical.js';
import type { Manifest, Service } from '../../manifests/model.js';
import { configFields, EMPTY_CONTEXT, endpoints, hostFields, type ServiceContext } from './engine-options.js';
import type { DocumentSecret } from '../../protocol/deployment.js';
import { secretMounts } from '../secrets/mounts.js';

export type { ServiceContext } from './engine-options.js';

/** Labels every container, volume and network of a daemon carries; the daemon touches nothing without its own `berth.device`. */
export const LABEL = {
  device: 'berth.device',
  release: 'berth.release',
  sequence: 'berth.sequence',
  service: 'berth.service',
  configHash: 'berth.config-hash',
  volume: 'berth.volume',
  network: 'berth.network',
  image: 'berth.image',
} as const;

/** A release as the daemon keeps it: what the signed document said, minus the signature. */
export interface Release {
  sequence: number;
  name: string;
  version: string;
  /** Digest of the manifest (from the document), identity of the content. */
  digest: string;
  spec: Manifest;
  /** The document's secrets, still encrypted (JWEs to this device): the journal never holds a value. */
  secrets?: Record<string, DocumentSecret>;
}

export function releaseLabel(r: Pick<Release, 'name' | 'version'>): string {
  return `${r.name}@${r.version}`;
}

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; device ids come from the control plane, so make them safe. */
export function nameSafe(value: string): string {
  const s = value.replace(/[^a-zA-Z0-9_.-]/g, '-');
  return /^[a-zA-Z0-9]/.test(s) ? s : 'x' + s;
}

/**
 * The identity of a service's container: everything that shapes the container. `dependsOn` only
 * orders starts, so changing it recreates nothing. `context` (the engine networks it joins, the
 * containers whose namespaces it shares) is part of it only when present, so a plain service's
 * hash is the same as before networks existed and an upgraded daemon recreates nothing.
 */
export function configHash(service: Service, context: ServiceContext = EMPTY_CONTEXT): string {
  const { dependsOn: _ignored, ...shape } = service;
  const networks = Object.values(context.networks).sort();
  const peers = Object.keys(context.peers).length ? context.peers : undefined;
  const secrets = context.secrets?.length ? context.secrets : undefined;
  if (!networks.length && !peers && !secrets) return canonicalDigest(shape);
  return canonicalDigest({ ...shape, 'berth.context': { networks, peers, ...(secrets ? { secrets } : {}) } });
}

export function shortHash(hash: string): string {
  return hash.replace(/^sha256:/, '').slice(0, 12);
}

export function containerName(deviceId: string, service: string, hash: string): string {
  return `berth-${nameSafe(deviceId)}-${nameSafe(service)}-${shortHash(hash)}`;
}

export function volumeName(deviceId: string, volume: string): string {
  return `berth-${nameSafe(deviceId)}-${nameSafe(volume)}`;
}

/**
 * A network's engine name: per device and manifest (two daemons sharing an engine, or two
 * manifests, never meet), stable across versions of one manifest while its definition is unchanged
 * (an update recreates only the services that changed, and a rollback finds the network in place).
 */
export function networkName(deviceId: string, manifest: Manifest, network: string): string {
  const def = manifest.networks?.[network] ?? {};
  return `berth-${nameSafe(deviceId)}-${nameSafe(manifest.name)}-${nameSafe(network)}-${shortHash(canonicalDigest(def)).slice(0, 6)}`;
}

export interface ServiceIdentity {
  hash: string;
  name: string;
  context: ServiceContext;
}

/**
 * Hash, container name and context of every service of a manifest. A service that shares another's
 * namespace (`service:NAME`) carries that one's container name, so it is recreated with it.
 */
export function serviceIdentities(deviceId: string, manifest: Manifest, files?: { root: string; secrets?: Record<string, DocumentSecret> }): Record<string, ServiceIdentity> {
  const out: Record<string, ServiceIdentity> = {};
  const resolve = (service: string, seen: string[]): ServiceIdentity => {
    const known = out[service];
    if (known) return known;
    if (seen.includes(service)) throw new Error(`services share namespaces in a cycle: ${[...seen, service].join(' → ')}`);
    const s = manifest.services[service];
    const networks = Object.fromEntries(Object.keys(s.networks ?? {}).map((n) => [n, networkName(deviceId, manifest, n)]));
    const peers: Record<string, string> = {};
    for (const mode of [s.networkMode, s.ipc]) {
      const peer = mode === undefined ? undefined : /^service:(.+)$/.exec(mode)?.[1];
      if (peer !== undefined && manifest.services[peer]) peers[peer] = resolve(peer, [...seen, service]).name;
    }
    const secrets = s.secrets?.length && files ? secretMounts(files.root, nameSafe(deviceId), service, s, files.secrets) : [];
    const context: ServiceContext = { networks: s.networkMode === 'networks' ? networks : {}, peers, ...(secrets.length ? { secrets } : {}) };
    const hash = configHash(s, context);
    const identity = { hash, name: containerName(deviceId, service, hash), context };
    out[service] = identity;
    return identity;
  };
  for (const service of Object.keys(manifest.services)) resolve(service, []);
  return out;
}

/** Dockerode create options for one service of a release; `image` is what the engine knows the image by. */
export function containerCreateOptions(
  deviceId: string,
  release: Pick<Release, 'name' | 'version' | 'sequence'>,
  serviceName: string,
  service: Service,
  image: string,
  context: ServiceContext = EMPTY_CONTEXT,
): ContainerCreateOptions {
  const hash = configHash(service, context);
  const hc = service.healthcheck;
  const host = hostFields(service, context);
  const first = endpoints(serviceName, service, context)[0];
  return {
    name: containerName(deviceId, serviceName, hash),
    Image: image,
    Cmd: service.command,
    Entrypoint: service.entrypoint,
    Env: Object.entries(service.environment).map(([k, v]) => `${k}=${v}`),
    User: service.user,
    WorkingDir: service.workingDir,
    StopTimeout: service.stopGracePeriodMs !== undefined ? Math.ceil(service.stopGracePeriodMs / 1000) : undefined,
    ...configFields(service),
    Healthcheck: hc
      ? {
          Test: hc.test,
          Interval: hc.intervalMs * 1e6,
          Timeout: hc.timeoutMs * 1e6,
          Retries: hc.retries,
          StartPeriod: hc.startPeriodMs * 1e6,
        }
      : undefined,
    Labels: {
      ...service.labels,
      [LABEL.device]: deviceId,
      [LABEL.release]: releaseLabel(release),
      [LABEL.sequence]: String(release.sequence),
      [LABEL.service]: serviceName,
      [LABEL.configHash]: hash,
      // The reference as the manifest pinned it: the engine only knows the image id.
      [LABEL.image]: service.image,
    },
    HostConfig: {
      ...host,
      RestartPolicy: { Name: service.restart === 'no' ? '' : service.restart, MaximumRetryCount: service.restartMaxRetries },
      Memory: service.memoryBytes,
      NanoCpus: service.nanoCpus,
      Mounts: [
        ...service.volumes.map((v) => ({ Type: 'volume' as const, Source: volumeName(deviceId, v.source), Target: v.target, ReadOnly: v.readOnly })),
        ...(host.Mounts ?? []),
        ...(context.secrets ?? []).map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: true })),
      ],
    },
    // API 1.41 attaches one network at create; the executor connects the others before start.
    NetworkingConfig: first ? { EndpointsConfig: { [first.network]: { Aliases: first.aliases } } } : undefined,
  };
}
