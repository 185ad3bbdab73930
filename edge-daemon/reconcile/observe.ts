import type Dockerode from 'dockerode';
import type { ContainerState, Observed } from './planner.js';
import { LABEL } from './spec.js';

/** What the engine holds that belongs to this device (by its `berth.device` label), plus image digests. */
export async function observe(docker: Dockerode, deviceId: string): Promise<Observed> {
  const filter = { label: [`${LABEL.device}=${deviceId}`] };
  const [containers, volumes, images] = await Promise.all([
    docker.listContainers({ all: true, filters: filter }),
    docker.listVolumes({ filters: filter }),
    docker.listImages({ digests: true }),
  ]);
  return {
    containers: containers
      .filter((c) => c.Labels?.[LABEL.device] === deviceId)
      .map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? '').replace(/^\//, ''), labels: c.Labels ?? {}, state: c.State as ContainerState })),
    volumes: (volumes.Volumes ?? [])
      .filter((v) => v.Labels?.[LABEL.device] === deviceId)
      .map((v) => ({ name: v.Name, labels: v.Labels ?? {} })),
    images: [...new Set(images.flatMap((i) => (i.RepoDigests ?? []).map((d) => d.slice(d.lastIndexOf('@') + 1))))],
  };
}
