import { campaignRoutes } from './campaigns.js';
import { deviceRoutes } from './device.js';
import { devicesRoutes } from './devices.js';
import { manifestRoutes } from './manifests.js';
import { operatorRoutes } from './operators.js';
import { policyRoutes } from './policies.js';
import { registryTokenRoutes } from './registry-token.js';
import { secretRoutes } from './secrets.js';
import { errorEnvelope, type Api } from './route.js';
import { serviceRoutes } from './service.js';
import { webhookRoutes } from './webhooks.js';
import { fleetRoutes } from './fleet.js';
import { varsRoutes } from './vars.js';
import { consoleRoutes } from './console.js';
import { deviceLogRoutes } from './device-logs.js';

/** Every route the control plane serves: a test checks it mounts exactly these. */
export const controlPlaneApi: Api = {
  title: 'Berth control plane',
  version: '1',
  error: errorEnvelope,
  routes: [
    ...Object.values(serviceRoutes),
    ...Object.values(deviceRoutes),
    ...Object.values(devicesRoutes),
    ...Object.values(manifestRoutes),
    ...Object.values(operatorRoutes),
    ...Object.values(registryTokenRoutes),
    ...Object.values(campaignRoutes),
    ...Object.values(policyRoutes),
    ...Object.values(webhookRoutes),
    ...Object.values(fleetRoutes),
    ...Object.values(varsRoutes),
    ...Object.values(consoleRoutes),
    ...Object.values(secretRoutes),
    ...Object.values(deviceLogRoutes),
  ],
};
