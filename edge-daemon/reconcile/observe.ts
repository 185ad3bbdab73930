import type { EngineClient } from '../engine/client.js';
import type { ContainerState, Observed } from './planner.js';
import { LABEL } from './spec.js';

/** What the engine holds that belongs to this device (by its `berth.device` label), plus image digests. */
export async function observe(docker: EngineClient, deviceId: string): Promise<Observed> {
  const filter = { label: [`${LABEL.device}=${deviceId}`] };
  const [containers, volumes, images, networks] = await Promise.all([
    docker.listContainers({ all: true, filters: filter }),
    docker.listVolumes({ filters: filter }),
    docker.listImages({ digests: true }),
    docker.listNetworks({ filters: filter }),
  ]);
  return {
    containers: containers
      .filter((c) => c.Labels?.[LABEL.device] === deviceId)
      .map((c) => {
        const exit = /^Exited \((\d+)\)/.exec(c.Status ?? '');
        return { id: c.Id, name: (c.Names?.[0] ?? '').replace(/^\//, ''), labels: c.Labels ?? {}, state: c.State as ContainerState, ...(exit ? { exitCode: Number(exit[1]) } : {}) };
      }),
    volumes: (volumes.Volumes ?? [])
      .filter((v) => v.Labels?.[LABEL.device] === deviceId)
      .map((v) => ({ name: v.Name, labels: v.Labels ?? {} })),
    networks: networks.filter((n) => n.Labels?.[LABEL.device] === deviceId).map((n) => ({ name: n.Name, labels: n.Labels ?? {} })),
    images: [...new Set(images.flatMap((i) => (i.RepoDigests ?? []).map((d) => d.slice(d.lastIndexOf('@') + 1))))],
  };
}
