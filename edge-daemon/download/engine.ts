import type { EngineClient } from '../engine/client.js';
import type { Logger } from '../gateway-log.js';
import { LineBuffer } from '../../common/lines.js';

/** The thin Docker side of the download channel: what the engine has, pull, tag, untag. */

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

/** Every engine image's layer chain (`RootFS.Layers`, diff_ids bottom-up). */
export async function engineLayerChains(docker: EngineClient): Promise<string[][]> {
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
export async function engineImage(docker: EngineClient, id: string): Promise<{ id: string; repoTags: string[] } | undefined> {
  try {
    const info = await docker.getImage(id).inspect();
    return { id: info.Id, repoTags: info.RepoTags ?? [] };
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Where the engine keeps its images, when it says so. */
export async function engineRootDir(docker: EngineClient): Promise<string | undefined> {
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
 * Reads Docker's pull stream: newline-delimited JSON, split anywhere across chunks. Docker reports
 * a failed pull inside the stream (HTTP 200, then an `error` line), so the whole stream is read and
 * the first error line kept.
 */
export class PullStreamReader {
  private readonly lines = new LineBuffer();
  failure: string | undefined;
  readonly statuses: { id?: string; status: string }[] = [];

  feed(chunk: string): void {
    for (const line of this.lines.push(chunk)) this.line(line);
  }

  end(): void {
    this.line(this.lines.rest());
  }

  private line(line: string): void {
    if (!line.trim()) return;
    let ev: PullEvent;
    try {
      ev = JSON.parse(line) as PullEvent;
    } catch {
      this.failure ??= `unreadable pull stream line ${JSON.stringify(line.slice(0, 200))}`;
      return;
    }
    const error = ev.errorDetail?.message ?? ev.error;
    if (error) this.failure ??= error;
    // Per-chunk byte updates are noise; the milestones (Already exists, Pull complete) are kept.
    else if (ev.status && !/^(Downloading|Extracting|Waiting|Verifying)/.test(ev.status)) this.statuses.push({ id: ev.id, status: ev.status });
  }
}

/** Pulls `ref` and follows Docker's progress stream to its end; any failure names the image. */
export async function pullImage(docker: EngineClient, ref: string, image: string, log: Logger): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(ref)) as NodeJS.ReadableStream;
  } catch (err) {
    throw new Error(`engine refused to pull image ${image} from the local handover registry (${ref}): ${(err as Error).message}`, { cause: err });
  }
  const reader = new PullStreamReader();
  try {
    for await (const chunk of stream) reader.feed(chunk.toString());
    reader.end();
  } catch (err) {
    throw new Error(`engine pull of image ${image} broke off: ${(err as Error).message}`, { cause: err });
  }
  log.debug({ image, steps: reader.statuses }, 'engine pull finished');
  if (reader.failure) throw new Error(`engine failed to pull image ${image}: ${reader.failure}`);
}

export async function tagImage(docker: EngineClient, id: string, repo: string, tag: string): Promise<void> {
  await docker.getImage(id).tag({ repo, tag });
}

/**
 * Removes one reference (a tag or repo@digest). Docker only untags while other references or a
 * container still use the image, and deletes it only when this was the last one: never forced.
 */
export async function removeReference(docker: EngineClient, ref: string, log: Logger): Promise<void> {
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
export async function engineTags(docker: EngineClient): Promise<string[]> {
  const images = await docker.listImages();
  return images.flatMap((i) => (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'));
}

/** All repo@digest references in the engine. */
export async function engineRepoDigests(docker: EngineClient): Promise<string[]> {
  const images = await docker.listImages();
  return images.flatMap((i) => i.RepoDigests ?? []).filter((d) => !d.startsWith('<none>'));
}
