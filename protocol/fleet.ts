import { z } from 'zod';
import { campaignStatuses, campaignView } from './campaigns.js';
import { releasePhases } from './device.js';
import { json, route } from './route.js';

/**
 * The fleet at a glance (issue 15): what the console's overview, `berth fleet status` and the
 * /metrics gauges show. Devices counted are the enrolled ones (imported but never enrolled, and
 * revoked devices, are left out).
 */

export const syncStates = ['in-sync', 'updating', 'failed', 'drifting', 'unassigned'] as const;
export type SyncState = (typeof syncStates)[number];

export const fleetStatus = z.object({
  devices: z.object({
    total: z.number().int(),
    online: z.number().int(),
    offline: z.number().int(),
    /**
     * in-sync: reports running its desired release (the twin adds per-service drift);
     * updating: on its way to the desired release (downloading, applying, or not yet reported it);
     * failed: failed or rolled back the desired release; drifting: anything else with a release
     * assigned; unassigned: nothing assigned.
     */
    sync: z.object(Object.fromEntries(syncStates.map((s) => [s, z.number().int()])) as Record<SyncState, z.ZodNumber>),
    /** By the phase of the last report; `none`: never reported. */
    phases: z.partialRecord(z.enum([...releasePhases, 'none']), z.number().int()),
  }),
  campaigns: z.object({
    byStatus: z.record(z.enum(campaignStatuses), z.number().int()),
    /** Draft, running and paused campaigns, newest first, with their waves (at most 20). */
    active: z.array(campaignView),
  }),
  /** Devices whose last report failed or rolled back, newest first (at most 20). */
  recentFailures: z.array(z.object({ serial: z.string(), phase: z.enum(releasePhases), release: z.string().nullable(), error: z.string().nullable(), at: z.string() })),
  /** When these counts were taken, and the silence after which a device counts offline. */
  at: z.string(),
  offlineAfter: z.string(),
});
export type FleetStatus = z.infer<typeof fleetStatus>;

export const fleetRoutes = {
  status: route({ method: 'get', path: '/v1/fleet/status', summary: 'The fleet at a glance: devices online, in sync, updating, failed; active campaigns with their waves; recent failures', auth: 'viewer', responses: { 200: json(fleetStatus) } }),
};
