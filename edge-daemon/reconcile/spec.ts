import type { ContainerCreateOptions } from 'dockerode';
import { canonicalDigest } from '../../manifests/canonical.js';
import type { Manifest, Service } from '../../manifests/model.js';

/** Labels every container and volume of a daemon carries; the daemon touches nothing without its own `berth.device`. */
export const LABEL = {
  device: 'berth.device',
  release: 'berth.release',
  sequence: 'berth.sequence',
  service: 'berth.service',
  configHash: 'berth.config-hash',
  volume: 'berth.volume',
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
 * orders starts, so changing it recreates nothing.
 */
export function configHash(service: Service): string {
  const { dependsOn: _ignored, ...shape } = service;
  return canonicalDigest(shape);
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

/** Dockerode create options for one service of a release; `image` is what the engine knows the image by. */
export function containerCreateOptions(
  deviceId: string,
  release: Pick<Release, 'name' | 'version' | 'sequence'>,
  serviceName: string,
  service: Service,
  image: string,
): ContainerCreateOptions {
  const hash = configHash(service);
  const hc = service.healthcheck;
  return {
    name: containerName(deviceId, serviceName, hash),
    Image: image,
    Cmd: service.command,
    Entrypoint: service.entrypoint,
    Env: Object.entries(service.environment).map(([k, v]) => `${k}=${v}`),
    User: service.user,
    WorkingDir: service.workingDir,
    StopTimeout: service.stopGracePeriodMs !== undefined ? Math.ceil(service.stopGracePeriodMs / 1000) : undefined,
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
      NetworkMode: service.networkMode,
      RestartPolicy: { Name: service.restart === 'no' ? '' : service.restart },
      Memory: service.memoryBytes,
      NanoCpus: service.nanoCpus,
      // busybox and many small images run a PID 1 that ignores SIGTERM; tini forwards it.
      Init: true,
      Mounts: service.volumes.map((v) => ({ Type: 'volume' as const, Source: volumeName(deviceId, v.source), Target: v.target, ReadOnly: v.readOnly })),
    },
  };
}
