import Docker from 'dockerode';
import { createLogger } from '../../common/log.js';
import { createImageFetcher, type ImageFetcher } from '../../edge-daemon/download/index.js';
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
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404) throw err;
      });
  }
}

/** A Berth image fetcher (the daemon's download channel) on its own state dir, anonymous pull token. */
export function berthFetcher(docker: Docker, registryProxy: string, stateDir: string, deviceId: string): ImageFetcher {
  return createImageFetcher({
    stateDir,
    docker,
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
