import { z } from 'zod';
import { VARIABLE_NAME_RE } from '../manifests/variables.js';
import { privilegeRefusal } from './policies.js';
import { secretsRefusal } from './secrets.js';
import { errorEnvelope, json, route } from './route.js';

/**
 * Variables (issue 13): values operators set per device, label selector or fleet, substituted into
 * manifests' `${NAME}` when a device's document is signed. Precedence device > selector > fleet;
 * two selector values that match one device and differ are a conflict, refused at rollout.
 * Values are configuration, not secrets: viewers may list them and the audit log records them
 * (secrets go through `/v1/secrets`, never here).
 */

export const variableName = z.string().regex(VARIABLE_NAME_RE, 'a variable name: letters, digits and _, not starting with a digit').max(128);
// NUL cannot travel in a container's environment or argv; 4 KiB is a value, not a file.
export const variableValue = z.string().max(4096, 'at most 4096 characters').refine((v) => !v.includes('\0'), 'a value cannot contain NUL');

/** Exactly one scope: the flags of `berth vars set|rm`. */
export const variableScope = z.object({
  device: z.string().min(1).optional().meta({ description: 'a device serial' }),
  selector: z.string().min(1).max(4096).optional().meta({ description: 'a label selector' }),
  fleet: z.literal(true).optional(),
});

export const setVariablesBody = variableScope.extend({
  values: z.record(z.string(), variableValue).superRefine((v, ctx) => {
    if (!Object.keys(v).length) ctx.addIssue({ code: 'custom', message: 'at least one KEY=VALUE' });
    // Checked here rather than as the record's key schema, so the refusal names the key and the rule.
    for (const k of Object.keys(v)) if (!variableName.safeParse(k).success) ctx.addIssue({ code: 'custom', path: [k], message: `${JSON.stringify(k)} is not a variable name: letters, digits and _, not starting with a digit, at most 128` });
  }),
});

/** DELETE query: `?device=SERIAL`, `?selector=…` or `?fleet=true`. */
export const removeVariableQuery = z.object({
  device: z.string().min(1).optional(),
  selector: z.string().min(1).optional(),
  fleet: z.enum(['true']).optional(),
});

export const variableView = z.object({
  name: z.string(),
  scope: z.enum(['device', 'selector', 'fleet']),
  /** The device's serial, the selector, or '' for the fleet. */
  target: z.string(),
  value: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
export const variableList = z.object({ variables: z.array(variableView) });
export const variablesSet = z.object({ set: z.array(variableView) });

export const variableConflict = z.object({ name: z.string(), candidates: z.array(z.object({ selector: z.string(), value: z.string() })) });

/** A device's effective values: what its next document would hold, and where each comes from. */
export const effectiveVariables = z.object({
  device: z.string(),
  values: z.array(z.object({ name: z.string(), value: z.string(), source: z.string().meta({ description: 'device, fleet, or selector SEL' }) })),
  conflicts: z.array(variableConflict),
});
export const effectiveQuery = z.object({ device: z.string().min(1).optional() });
export const variableListAnswer = z.union([variableList, effectiveVariables]);

export const variableNeed = z.object({ name: z.string(), required: z.boolean(), default: z.string().optional(), message: z.string().optional(), paths: z.array(z.string()) });

export const variablesCheck = z.object({
  manifest: z.string(),
  selector: z.string(),
  needs: z.array(variableNeed),
  devices: z.number().int(),
  ok: z.boolean(),
  groups: z.array(
    z.object({
      devices: z.number().int(),
      sample: z.array(z.string()),
      lacking: z.array(z.object({ name: z.string(), reason: z.string() })),
      conflicts: z.array(variableConflict),
      message: z.string(),
    }),
  ),
});

/** A rollout refused because target devices lack a variable or hit a conflict. */
export const variablesRefusal = errorEnvelope.extend({ variables: variablesCheck });

/** What campaign create and device assign answer with 422: one refusal per up-front check. */
export const rolloutRefusal = z.union([privilegeRefusal, variablesRefusal, secretsRefusal]);

export const varsRoutes = {
  set: route({
    method: 'put',
    path: '/v1/vars',
    summary: 'Set variables for one scope (device, selector or fleet); devices get them at their next assignment (audited)',
    auth: 'release-manager',
    body: setVariablesBody,
    responses: { 200: json(variablesSet, 'the values as stored') },
  }),
  list: route({
    method: 'get',
    path: '/v1/vars',
    summary: 'List stored variables; with ?device=SERIAL, that device\'s effective values and where each comes from',
    auth: 'viewer',
    query: effectiveQuery,
    responses: { 200: json(variableListAnswer) },
  }),
  check: route({
    method: 'post',
    path: '/v1/vars/check',
    summary: 'Which target devices a rollout of name@version to a selector would leave lacking a variable, or in conflict (what campaign create checks; creates nothing)',
    auth: 'viewer',
    body: z.object({ manifest: z.string().min(1), selector: z.string().default('') }),
    responses: { 200: json(variablesCheck) },
  }),
  remove: route({
    method: 'delete',
    path: '/v1/vars/:name',
    summary: 'Remove a variable from one scope (audited); documents already assigned keep their values',
    auth: 'release-manager',
    query: removeVariableQuery,
    responses: { 200: json(variableView, 'the value removed') },
  }),
};
