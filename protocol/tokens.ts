import { z } from 'zod';
import { DIGEST_RE } from '../common/digest.js';

/** The tokens the control plane signs: a device's own (control channel) and pull tokens (download channel). */

/** JWT types and audiences: a token of one kind is never accepted where another is expected. */
export const TOKEN = {
  issuer: 'berth-control-plane',
  deviceTyp: 'berth-device+jwt',
  deviceAudience: 'berth-control-plane',
  pullTyp: 'berth-pull+jwt',
  pullAudience: 'berth-registry-proxy',
} as const;

/**
 * A pull token's `access` claim (Docker token spec shape, plus `digests`): the repositories on the
 * proxy and, for devices, the manifest digests of its desired state. The proxy allows a blob when
 * a manifest it allows references it. No `digests` means any content of the repository (operators).
 */
export const pullAccess = z.array(
  z.object({
    type: z.literal('repository'),
    name: z.string(),
    actions: z.array(z.string()),
    digests: z.array(z.string().regex(DIGEST_RE)).optional(),
  }),
);
export type PullAccess = z.infer<typeof pullAccess>;
