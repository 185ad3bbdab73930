import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { createLogger } from '../../common/log.js';
import { createImageFetcher, type ImageFetcher } from '../../edge-daemon/download/index.js';
import { EngineClient } from '../../edge-daemon/engine/client.js';
import { startRig, type Rig } from '../rig/index.js';

/** The rig's engine and registry, and what the download benches do with them. */

export interface BenchRig {
  rig: Rig;
  docker: Docker;
  registryPort: number;
}

export async function benchRig(): Promise<BenchRig> {
  const rig = await startRig();
  return { rig, docker: new Docker({ socketPath: rig.dockerSocket }), registryPort: Number(rig.registry.split(':')[1]) };
}

/** `docker pull REF` through the engine's API, read to the end; fails on an error in the stream. */
export async function dockerPull(docker: Docker, ref: string): Promise<void> {
  const stream = await docker.pull(ref);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, events: { error?: string }[]) => {
        const failed = events?.find((e) => e.error);
        if (err || failed) reject(err ?? new Error(`docker pull ${ref}: ${failed?.error}`));
        else resolve();
      },
      () => undefined,
    );
  });
}

/**
 * Removes images by id (config digest) with every reference to them, so the next run starts from
 * nothing of them; images that are not there are fine. Only the benches' own images are passed
 * here (unique repositories and contents), never anything another user of the engine made.
 */
export async function removeImages(docker: Docker, ids: string[]): Promise<void> {
  for (const id of ids) {
    await docker
      .getImage(id)
      .remove({ force: true })
      .catch((err: { statusCode?: number; message?: string }) => {
        // 409: a running container uses it (never forced away); the next run's numbers are
        // unaffected as long as the bench images are unique per run, which they are.
        if (err.statusCode === 409) console.error(`bench cleanup: image ${id} kept: ${err.message}`);
        else if (err.statusCode !== 404) throw err;
      });
  }
}

/** A Berth image fetcher (the daemon's download channel) on its own state dir, anonymous pull token. */
export function berthFetcher(docker: Docker, registryProxy: string, stateDir: string, deviceId: string): ImageFetcher {
  return createImageFetcher({
    stateDir,
    // The daemon's own engine client, on the engine this dockerode talks to.
    docker: new EngineClient(`unix://${(docker.modem as unknown as { socketPath: string }).socketPath}`),
    deviceId,
    registryProxy,
    pullToken: async () => 'anonymous',
    log: createLogger('bench-fetcher', { level: 'warn' }),
    diskMarginBytes: 16 << 20,
    backoffBaseMs: 50,
    backoffCapMs: 500,
    idleTimeoutMs: 15_000,
  });
}

export const MB = 1e6;
export const MiB = 1 << 20;

/** Containers the engine runs for one device (by the daemon's labels), with their release. */
export async function deviceContainers(docker: Docker, deviceId: string): Promise<{ release: string; state: string; service: string }[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`berth.device=${deviceId}`] } });
  return list.map((c) => ({ release: c.Labels['berth.release'] ?? '', state: c.State, service: c.Labels['berth.service'] ?? '' }));
}

/**
 * True when the device runs exactly `count` containers, all running, and the `changed` services'
 * containers are of `release` (unchanged services keep the container, and label, they had).
 */
export async function runsRelease(docker: Docker, deviceId: string, release: string, count: number, changed: string[]): Promise<boolean> {
  const cs = await deviceContainers(docker, deviceId);
  return cs.length === count && cs.every((c) => c.state === 'running') && changed.every((s) => cs.some((c) => c.service === s && c.release === release));
}

export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Removes every container and volume the daemons of these devices left (bench cleanup). */
export async function removeDeviceContainers(docker: Docker, deviceIds: string[]): Promise<void> {
  for (const id of deviceIds) {
    const list = await docker.listContainers({ all: true, filters: { label: [`berth.device=${id}`] } });
    for (const c of list) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
    const { Volumes } = await docker.listVolumes({ filters: { label: [`berth.device=${id}`] } });
    for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  }
}
