import type Dockerode from 'dockerode';
import type { Logger } from '../../common/log.js';

/** The thin Docker side of the download channel: what the engine has, pull, tag, untag. */

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

/** Every engine image's layer chain (`RootFS.Layers`, diff_ids bottom-up). */
export async function engineLayerChains(docker: Dockerode): Promise<string[][]> {
  const images = await docker.listImages();
  const chains = await Promise.all(
    images.map(async (i) => {
      try {
        const info = await docker.getImage(i.Id).inspect();
        return info.RootFS?.Layers ?? [];
      } catch (err) {
        // Removed between list and inspect: simply not there.
        if (statusOf(err) === 404) return [];
        throw err;
      }
    }),
  );
  return chains.filter((c) => c.length > 0);
}

/** The engine's image with this id (= config digest), or undefined. */
export async function engineImage(docker: Dockerode, id: string): Promise<{ id: string; repoTags: string[] } | undefined> {
  try {
    const info = await docker.getImage(id).inspect();
    return { id: info.Id, repoTags: info.RepoTags ?? [] };
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Where the engine keeps its images, when it says so. */
export async function engineRootDir(docker: Dockerode): Promise<string | undefined> {
  const info = (await docker.info()) as { DockerRootDir?: string };
  return info.DockerRootDir || undefined;
}

interface PullEvent {
  status?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Pulls `ref` and follows Docker's JSON progress stream to its end. Docker reports a failed pull
 * inside the stream (HTTP 200 with an `error` line), so the stream is read to the end and any
 * error line becomes an Error naming the image.
 */
export async function pullImage(docker: Dockerode, ref: string, image: string, log: Logger): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(ref)) as NodeJS.ReadableStream;
  } catch (err) {
    throw new Error(`engine refused to pull image ${image} from the local handover registry (${ref}): ${(err as Error).message}`, { cause: err });
  }
  let buf = '';
  let failure: string | undefined;
  const onLine = (line: string): void => {
    if (!line.trim()) return;
    let ev: PullEvent;
    try {
      ev = JSON.parse(line) as PullEvent;
    } catch {
      return;
    }
    if (ev.error || ev.errorDetail?.message) failure ??= ev.errorDetail?.message ?? ev.error;
    else if (ev.status && !/Downloading|Extracting|Waiting|Verifying/.test(ev.status)) log.debug({ image, layer: ev.id, status: ev.status }, 'engine pull');
  };
  try {
    for await (const chunk of stream) {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    onLine(buf);
  } catch (err) {
    throw new Error(`engine pull of image ${image} broke off: ${(err as Error).message}`, { cause: err });
  }
  if (failure) throw new Error(`engine failed to pull image ${image}: ${failure}`);
}

export async function tagImage(docker: Dockerode, id: string, repo: string, tag: string): Promise<void> {
  await docker.getImage(id).tag({ repo, tag });
}

/**
 * Removes one reference (a tag or repo@digest). Docker only untags while other references or a
 * container still use the image, and deletes it only when this was the last one: never forced.
 */
export async function removeReference(docker: Dockerode, ref: string, log: Logger): Promise<void> {
  try {
    await docker.getImage(ref).remove({ noprune: false });
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return;
    // 409: a container (perhaps another device's) uses the image; the reference stays, harmlessly.
    if (status === 409) {
      log.info({ ref, err: (err as Error).message }, 'image reference kept: in use');
      return;
    }
    throw err;
  }
}

/** All tags in the engine (`repo:tag`). */
export async function engineTags(docker: Dockerode): Promise<string[]> {
  const images = await docker.listImages();
  return images.flatMap((i) => (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'));
}

/** All repo@digest references in the engine. */
export async function engineRepoDigests(docker: Dockerode): Promise<string[]> {
  const images = await docker.listImages();
  return images.flatMap((i) => i.RepoDigests ?? []).filter((d) => !d.startsWith('<none>'));
}
