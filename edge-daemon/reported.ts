import type { EngineClient } from './engine/client.js';
import type { ContainerInspect } from './engine/types.js';
import type { ServiceReport } from '../protocol/device.js';
import { observe } from './reconcile/observe.js';
import { LABEL, type Release } from './reconcile/spec.js';

/** Reads the engine's view of one container into a reported service entry. */
export function serviceReportOf(info: ContainerInspect, image: string): ServiceReport {
  const st = info.State;
  const status = (['created', 'running', 'restarting', 'exited', 'paused', 'dead'] as const).find((s) => s === st.Status) ?? 'dead';
  const health = (['starting', 'healthy', 'unhealthy'] as const).find((h) => h === st.Health?.Status) ?? 'none';
  return {
    image,
    imageId: info.Image,
    containerId: info.Id,
    status,
    health,
    restarts: info.RestartCount,
    exitCode: st.Running ? undefined : st.ExitCode,
    lastError: st.Error ? st.Error.slice(0, 4096) : undefined,
  };
}

/**
 * What runs, per service, as the engine shows it (the running container of a service when there
 * is one); a service of the current release without any container is `missing`. When the engine
 * cannot be read, only the missing entries remain: the report says what is known.
 */
export async function reportedServices(docker: EngineClient, deviceId: string, current: Release | null, onError: (err: Error) => void): Promise<Record<string, ServiceReport>> {
  const services: Record<string, ServiceReport> = {};
  try {
    const seen = await observe(docker, deviceId);
    const byService = new Map<string, typeof seen.containers>();
    for (const c of seen.containers) {
      const s = c.labels[LABEL.service] ?? '';
      byService.set(s, [...(byService.get(s) ?? []), c]);
    }
    for (const [service, list] of byService) {
      const pick = list.find((c) => c.state === 'running' || c.state === 'restarting') ?? list[0];
      const info = await docker.getContainer(pick.id).inspect();
      services[service] = serviceReportOf(info, pick.labels[LABEL.image] ?? info.Config.Image);
    }
  } catch (err) {
    onError(err as Error);
  }
  for (const [name, s] of Object.entries(current?.spec.services ?? {})) {
    services[name] ??= { image: s.image, status: 'missing', health: 'none', restarts: 0 };
  }
  return services;
}
