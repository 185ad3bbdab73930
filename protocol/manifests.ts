import { z } from 'zod';
import { privilegeView } from './policies.js';
import { pinnedManifestSchema } from '../manifests/schema.js';
import { errorEnvelope, json, route } from './route.js';
import { variableNeed } from './vars.js';

/** Publishing and reading manifests: immutable name@version, every image pinned to a digest. */

export const publishBody = z.object({ source: z.string().min(1).max(1_000_000), filename: z.string().min(1).max(255).default('manifest.yaml') });
export const manifestListQuery = z.object({ name: z.string().optional() });
export const diffQuery = z.object({ from: z.string().min(1), to: z.string().min(1) });

const manifestIssue = z.object({ file: z.string(), path: z.string(), message: z.string(), line: z.number().int().optional(), column: z.number().int().optional() });

export const manifestSummary = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  digest: z.string(),
  publishedAt: z.string(),
  publishedBy: z.string(),
});
export const manifestView = manifestSummary.extend({
  /** The normalized manifest, every image pinned (manifests/README.md). */
  spec: pinnedManifestSchema,
  /** The file as published. */
  source: z.string(),
  /** What the manifest asks for beyond a plain container (manifests/README.md#privileges). */
  privileges: z.array(privilegeView),
  /** The `${VARIABLES}` it uses, each with its default or message (manifests/variables.ts); values come from `berth vars`. */
  variables: z.array(variableNeed),
  /** Publish only: keys accepted that do not deploy quite as Compose would (container_name, pull_policy). */
  warnings: z.array(manifestIssue).optional(),
});
export const manifestList = z.object({ manifests: z.array(manifestSummary) });

const fieldChange = z.object({ field: z.string(), from: z.unknown(), to: z.unknown() });
export const manifestDiff = z.object({
  from: z.string(),
  to: z.string(),
  services: z.array(
    z.object({
      service: z.string(),
      change: z.enum(['added', 'removed', 'changed']),
      /** Absent when the image is the same. */
      image: z.object({ from: z.string().nullable(), to: z.string().nullable() }).optional(),
      fields: z.array(fieldChange),
    }),
  ),
  /** Top-level settings outside services (volumes, update strategy). */
  settings: z.array(fieldChange),
});

const imageProblem = z.object({ service: z.string(), image: z.string(), reason: z.string(), message: z.string() });
export const publishRefusal = z.union([errorEnvelope.extend({ errors: z.array(manifestIssue) }), errorEnvelope.extend({ problems: z.array(imageProblem) })]);

/**
 * What publishing the file would do, nothing written (`berth apply --dry-run`, `--diff`): the pinned
 * result as publishing would store it; `outcome` new, unchanged (same content already published) or
 * conflict (other content under that version: publishing would be refused with 409); `latest` the
 * version of that name published last, and `diff` the change from it to this file (null: none yet).
 */
export const publishPreview = manifestView.omit({ id: true, publishedAt: true, publishedBy: true, warnings: true }).extend({
  warnings: z.array(manifestIssue),
  outcome: z.enum(['new', 'unchanged', 'conflict']),
  publishedDigest: z.string().nullable(),
  latest: z.object({ release: z.string(), digest: z.string() }).nullable(),
  diff: manifestDiff.nullable(),
});

export const manifestRoutes = {
  publish: route({
    method: 'post',
    path: '/v1/manifests',
    summary: 'Publish a manifest file (tags resolved and pinned to digests); same content again is a no-op',
    auth: 'release-manager',
    body: publishBody,
    bodyTypes: ['application/yaml', 'text/yaml', 'text/plain'],
    responses: {
      200: json(manifestView, 'already published with the same content; nothing changed'),
      201: json(manifestView, 'published'),
      409: json(errorEnvelope, 'name@version exists with other content'),
      422: json(publishRefusal, 'invalid manifest (errors) or an image that does not resolve (problems)'),
    },
  }),
  dryRun: route({
    method: 'post',
    path: '/v1/manifests/dry-run',
    summary: 'Validate a manifest file and pin its tags as publishing would, and compare it with the latest version; writes nothing',
    auth: 'release-manager',
    body: publishBody,
    responses: {
      200: json(publishPreview, 'what publishing would store, and the change from the latest version'),
      422: json(publishRefusal, 'invalid manifest (errors) or an image that does not resolve (problems)'),
    },
  }),
  list: route({
    method: 'get',
    path: '/v1/manifests',
    summary: 'List published manifests',
    auth: 'viewer',
    query: manifestListQuery,
    responses: { 200: json(manifestList) },
  }),
  diff: route({
    method: 'get',
    path: '/v1/manifests/:name/diff',
    summary: 'Per-service differences between two versions',
    auth: 'viewer',
    query: diffQuery,
    responses: { 200: json(manifestDiff) },
  }),
  show: route({
    method: 'get',
    path: '/v1/manifests/:name/:version',
    summary: 'One manifest with its pinned digests and source',
    auth: 'viewer',
    responses: { 200: json(manifestView) },
  }),
};
