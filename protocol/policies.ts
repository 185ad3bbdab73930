import { z } from 'zod';
import { PRIVILEGE_KEYS } from '../manifests/privileges.js';
import { errorEnvelope, json, route } from './route.js';

/**
 * Privilege policies: an admin grants what manifests may ask for (devices, capabilities, binds,
 * host namespaces, published ports…) per group of devices (a label selector). A device's grant is
 * the union of the policies whose selectors match it; a rollout is checked against it up front.
 */

export const policyName = z.string().regex(/^[a-z0-9](?:[a-z0-9._-]{0,62})$/, 'a policy name: lowercase letters, digits, . _ -, at most 63');

export const policyBody = z.object({
  /** Label selector of the devices it grants to (`hw=zigbee,site in (berlin,paris)`). */
  selector: z.string().min(1),
  /** `KEY=VALUE[,VALUE…]` entries (manifests/privileges.ts grammar); a bare `privileged` too. */
  allow: z.array(z.string()).min(1),
});

export const privilegeView = z.object({ key: z.enum(PRIVILEGE_KEYS), value: z.string(), services: z.array(z.string()) });

export const policyView = z.object({
  name: z.string(),
  selector: z.string(),
  /** Normalized `KEY=V1,V2` per key. */
  allow: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
  /** Devices (not revoked) its selector matches now. */
  devices: z.number().int(),
});
export const policyList = z.object({ policies: z.array(policyView) });

/** One group of target devices that lacks privileges: the same grant, the same missing privileges. */
export const lackingGroup = z.object({
  devices: z.number().int(),
  /** Up to 10 serials of the group. */
  sample: z.array(z.string()),
  /** The policies that match the group (their union is its grant). */
  policies: z.array(z.string()),
  lacking: z.array(privilegeView),
  /** "12 devices matching site=berlin lack devices=/dev/ttyUSB0 (no policy grants it)". */
  message: z.string(),
});

export const privilegeCheck = z.object({
  manifest: z.string(),
  selector: z.string(),
  /** What the manifest asks for. */
  privileges: z.array(privilegeView),
  /** Target devices (not revoked) matching the selector. */
  devices: z.number().int(),
  ok: z.boolean(),
  groups: z.array(lackingGroup),
});
export const privilegeCheckBody = z.object({ manifest: z.string().min(1), selector: z.string().default('') });

/** A rollout refused because devices lack privileges (campaign create, device assign). */
export const privilegeRefusal = errorEnvelope.extend({ check: privilegeCheck });

export const policyRoutes = {
  set: route({
    method: 'put',
    path: '/v1/policies/:name',
    summary: 'Create or replace a privilege policy: what manifests may ask for on the devices a selector picks (audited)',
    auth: 'admin',
    body: policyBody,
    responses: { 200: json(policyView, 'the policy as stored') },
  }),
  list: route({ method: 'get', path: '/v1/policies', summary: 'List privilege policies', auth: 'viewer', responses: { 200: json(policyList) } }),
  show: route({ method: 'get', path: '/v1/policies/:name', summary: 'One privilege policy', auth: 'viewer', responses: { 200: json(policyView) } }),
  remove: route({
    method: 'delete',
    path: '/v1/policies/:name',
    summary: 'Remove a privilege policy (audited); rollouts already assigned are not undone',
    auth: 'admin',
    responses: { 200: json(policyView, 'the policy removed') },
  }),
  check: route({
    method: 'post',
    path: '/v1/policies/check',
    summary: 'Which devices a rollout of name@version to a selector would give privileges no policy grants (what campaign create checks; creates nothing)',
    auth: 'viewer',
    body: privilegeCheckBody,
    responses: { 200: json(privilegeCheck) },
  }),
};
