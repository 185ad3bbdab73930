import { z } from 'zod';
import { deviceReport, enrollChallengeRequest, enrollChallengeResponse, enrollRequest, enrollResponse, pullTokenResponse } from './protocol.js';
import { empty, json, route } from './route.js';

/**
 * The control channel: what an edge daemon calls. Enrollment is anonymous (the signed challenge is
 * the proof); the rest carries the device token and acts on the caller's own device only.
 */

export const desiredQuery = z.object({ wait: z.coerce.number().int().min(0).max(3600).optional() });
export const desiredAnswer = z.object({ document: z.string().meta({ description: 'the deployment document, a compact JWS' }) });
export const reportAnswer = z.object({ accepted: z.boolean().meta({ description: 'false when the report is not newer than the last one' }) });

export const deviceRoutes = {
  challenge: route({
    method: 'post',
    path: '/v1/enroll/challenge',
    summary: 'A fresh single-use challenge for a device to sign',
    auth: 'none',
    body: enrollChallengeRequest,
    responses: { 200: json(enrollChallengeResponse) },
  }),
  enroll: route({
    method: 'post',
    path: '/v1/enroll',
    summary: 'Enroll (or renew) with a signature over the challenge by the key the manufacturer recorded',
    auth: 'none',
    body: enrollRequest,
    responses: { 200: json(enrollResponse, 'enrolled: the device token, the proxy and the keys to pin') },
  }),
  desired: route({
    method: 'get',
    path: '/v1/device/desired',
    summary: 'The signed deployment document (ETag = "sequence"; If-None-Match → 304; ?wait=S long-polls)',
    auth: 'device',
    query: desiredQuery,
    responses: {
      200: json(desiredAnswer, 'the document, with its ETag'),
      204: empty('nothing assigned to this device yet'),
      304: empty('unchanged since the ETag sent in If-None-Match'),
    },
  }),
  pullToken: route({
    method: 'post',
    path: '/v1/device/pull-token',
    summary: 'A registry-proxy token covering exactly the images of the desired and previous release',
    auth: 'device',
    responses: { 200: json(pullTokenResponse) },
  }),
  report: route({
    method: 'post',
    path: '/v1/device/report',
    summary: 'Report reported state; older or equal sequences are ignored',
    auth: 'device',
    body: deviceReport,
    responses: { 202: json(reportAnswer, 'recorded (or ignored as stale)') },
  }),
};
