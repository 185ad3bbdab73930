import { z } from 'zod';
import { rolloutRefusal } from './vars.js';
import { labelsSchema, releaseRefSchema } from '../common/grammar.js';
import { deviceReport, releasePhases, serviceReport } from './device.js';
import { errorEnvelope, json, route } from './route.js';

/** The operators' view of devices: import, list, the twin, labels, direct assignment, revocation. */

export const deviceStatuses = ['registered', 'enrolled', 'revoked'] as const;
const deviceStatus = z.enum(deviceStatuses);
const time = z.string().meta({ description: 'ISO 8601' });
/** `name@version`. */
const release = z.string().meta({ description: 'name@version' });

export const deviceListQuery = z.object({
  selector: z.string().max(4096).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  offset: z.coerce.number().int().min(0).default(0),
  /** The `next` of the previous page: devices whose serial sorts after it. */
  after: z.string().min(1).max(256).optional(),
});
export const importQuery = z.object({ format: z.enum(['csv', 'jsonl']).optional() });
export const labelsEdit = z.object({ set: labelsSchema.default({}), remove: z.array(z.string()).default([]) });
export const assignBody = z.object({ manifest: releaseRefSchema });
export const historyQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) });

export const importResult = z.object({ created: z.number().int(), updated: z.number().int(), unchanged: z.number().int() });
/** `errors`: the first 100 bad lines; `errorCount`: all of them. */
export const importRefusal = errorEnvelope.extend({ errors: z.array(z.object({ line: z.number().int(), message: z.string() })).max(100), errorCount: z.number().int() });

export const deviceSummary = z.object({
  id: z.string(),
  serial: z.string(),
  labels: z.record(z.string(), z.string()),
  status: deviceStatus,
  online: z.boolean(),
  lastSeenAt: time.nullable(),
  desired: z.object({ release, sequence: z.number().int() }).nullable(),
  phase: z.enum(releasePhases).nullable(),
  /** name@version its last report says it runs (null: none, or never reported). */
  running: z.string().nullable(),
});
/** One page in serial order; `total` counts every match; `next` is the `after` of the following page (null: last page). */
export const deviceList = z.object({ total: z.number().int(), devices: z.array(deviceSummary), next: z.string().nullable() });

export const serviceDrifts = ['in-sync', 'missing', 'image-differs', 'not-running', 'unhealthy', 'unexpected'] as const;
export type ServiceDrift = (typeof serviceDrifts)[number];

export const serviceTwin = z.object({
  desiredImage: z.string().nullable(),
  reportedImage: z.string().nullable(),
  status: serviceReport.shape.status.nullable(),
  health: serviceReport.shape.health.nullable(),
  restarts: z.number().int().nullable(),
  lastError: z.string().nullable(),
  drift: z.enum(serviceDrifts),
});

/** The device's last report as the twin shows it: its own words (`bytes` as sent), when it arrived. */
export const reportedView = deviceReport.pick({ sequence: true, desiredSequence: true, running: true, phase: true, bytes: true, at: true }).extend({
  error: z.string().nullable(),
  receivedAt: time,
});

export const twinView = z.object({
  online: z.boolean(),
  lastSeenAt: time.nullable(),
  desired: z.object({ sequence: z.number().int(), release, campaign: z.string().nullable() }).nullable(),
  reported: reportedView.nullable(),
  /** The device runs exactly its desired release, every service up and not unhealthy. */
  inSync: z.boolean(),
  services: z.record(z.string(), serviceTwin),
});

export const deviceTwin = twinView.extend({
  id: z.string(),
  serial: z.string(),
  labels: z.record(z.string(), z.string()),
  status: deviceStatus,
  createdAt: time,
  enrolledAt: time.nullable(),
  previousRelease: release.nullable(),
});

export const reportHistory = z.object({ reports: z.array(deviceReport.extend({ receivedAt: time })) });
export const labelsResult = z.object({ serial: z.string(), labels: z.record(z.string(), z.string()), changed: z.boolean() });
export const assignment = z.object({ serial: z.string(), release: release.nullable(), sequence: z.number().int().nullable() });
export const revocation = z.object({ serial: z.string(), status: z.literal('revoked') });
export const removal = z.object({ serial: z.string(), removed: z.literal(true) });

export const devicesRoutes = {
  import: route({
    method: 'post',
    path: '/v1/devices/import',
    summary: 'Import manufacturing records (CSV serial,public_key,labels or JSON lines); all or nothing, idempotent',
    auth: 'admin',
    bodyTypes: ['text/csv', 'application/x-ndjson', 'application/jsonl'],
    query: importQuery,
    responses: { 200: json(importResult, 'imported'), 422: json(importRefusal, 'bad rows, by line number; nothing imported') },
  }),
  list: route({
    method: 'get',
    path: '/v1/devices',
    summary: 'List devices in serial order, optionally those a label selector picks; paged (limit, then after=next or offset); total counts every match',
    auth: 'viewer',
    query: deviceListQuery,
    responses: { 200: json(deviceList) },
  }),
  twin: route({
    method: 'get',
    path: '/v1/devices/:serial',
    summary: "The device's twin: desired versus reported, drift per service, online/offline",
    auth: 'viewer',
    responses: { 200: json(deviceTwin) },
  }),
  history: route({
    method: 'get',
    path: '/v1/devices/:serial/history',
    summary: 'The newest reports of a device (up to limit, from its bounded history), oldest first',
    auth: 'viewer',
    query: historyQuery,
    responses: { 200: json(reportHistory) },
  }),
  labels: route({
    method: 'patch',
    path: '/v1/devices/:serial/labels',
    summary: 'Set and remove labels',
    auth: 'release-manager',
    body: labelsEdit,
    responses: { 200: json(labelsResult, 'the labels now; changed is false when nothing changed') },
  }),
  assign: route({
    method: 'post',
    path: '/v1/devices/:serial/assign',
    summary: 'Assign a manifest version to one device directly (outside campaigns)',
    auth: 'release-manager',
    body: assignBody,
    responses: {
      200: json(assignment, 'assigned: the release and its sequence'),
      422: json(rolloutRefusal, 'refused up front: privileges no policy grants this device, or variables it lacks'),
    },
  }),
  rollback: route({
    method: 'post',
    path: '/v1/devices/:serial/rollback',
    summary: 'Send one device back to its previous manifest',
    auth: 'release-manager',
    responses: { 200: json(assignment, 'the release the device goes back to') },
  }),
  revoke: route({
    method: 'post',
    path: '/v1/devices/:serial/revoke',
    summary: 'Revoke a device: its tokens stop working at once',
    auth: 'admin',
    responses: { 200: json(revocation) },
  }),
  remove: route({
    method: 'delete',
    path: '/v1/devices/:serial',
    summary: 'Remove a revoked device and everything kept for it (state, history, its own variables and secrets), all or nothing; its id stays revoked for the registry proxy',
    auth: 'admin',
    responses: {
      200: json(removal, 'removed'),
      409: json(errorEnvelope, 'not revoked yet, or an active campaign still holds it; nothing removed'),
    },
  }),
};
