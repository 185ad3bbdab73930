import type { EngineClient } from '../engine/client.js';
import type { Logger } from '../gateway-log.js';
import type { Service } from '../../manifests/model.js';
import { endpoints, type ServiceContext } from './engine-options.js';
import { LABEL } from './spec.js';

/** The effectful half of networks: create, attach, remove, each safe to replay after a crash. */

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** A user-defined bridge network; one that exists under this name already is this one (the name carries device and manifest). */
export async function createNetwork(docker: EngineClient, deviceId: string, step: { network: string; name: string; internal: boolean }): Promise<void> {
  const existing = await docker.listNetworks({ filters: { name: [step.name] } });
  if (existing.some((n) => n.Name === step.name)) {
    if (existing.some((n) => n.Name === step.name && n.Labels?.[LABEL.device] !== deviceId)) throw new Error(`network name ${step.name} is taken by a network that is not this device's`);
    return;
  }
  try {
    await docker.createNetwork({ Name: step.name, Driver: 'bridge', Internal: step.internal, CheckDuplicate: true, Labels: { [LABEL.device]: deviceId, [LABEL.network]: step.network } });
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
}

/** Connects the container to the networks after its first (API 1.41 attaches one at create). */
export async function attachNetworks(docker: EngineClient, container: string, serviceName: string, spec: Service, context: ServiceContext): Promise<void> {
  const wanted = endpoints(serviceName, spec, context).slice(1);
  if (!wanted.length) return;
  const info = await docker.getContainer(container).inspect();
  const attached = new Set(Object.keys(info.NetworkSettings.Networks ?? {}));
  for (const e of wanted) {
    if (attached.has(e.network)) continue;
    await docker.getNetwork(e.network).connect({ Container: container, EndpointConfig: { Aliases: e.aliases } });
  }
}

/** Removes a network this device no longer uses; one that a container (any owner's) still uses stays. */
export async function removeNetwork(docker: EngineClient, name: string, log: Logger): Promise<void> {
  let info: { Containers?: Record<string, unknown> };
  try {
    info = (await docker.getNetwork(name).inspect()) as { Containers?: Record<string, unknown> };
  } catch (err) {
    if (statusOf(err) === 404) return;
    throw err;
  }
  if (Object.keys(info.Containers ?? {}).length) {
    log.info({ network: name, containers: Object.keys(info.Containers ?? {}).length }, 'network still in use; left in place');
    return;
  }
  try {
    await docker.getNetwork(name).remove();
  } catch (err) {
    // 404: gone already; 403/409: a container attached meanwhile, so it stays.
    if (![403, 404, 409].includes(statusOf(err) ?? -1)) throw err;
  }
}
