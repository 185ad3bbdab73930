import { and, eq, gt, isNotNull } from 'drizzle-orm';
import type { ControlPlaneContext } from '../context.js';
import { devices, operatorTokens, removedDevices } from '../db/schema.js';

/**
 * What is revoked while tokens it holds may still be alive: signing keys, devices, and operator
 * tokens revoked within the last pull-token lifetime (a pull token minted before outlives nothing
 * older). The registry proxy polls this so a revocation reaches it in seconds.
 */
export async function revocationList(ctx: ControlPlaneContext): Promise<{ kids: string[]; subjects: string[] }> {
  const since = ctx.now().getTime() - Math.max(ctx.config.pullTokenTtlSec, ctx.config.operatorPullTokenTtlSec) * 1000;
  const [revokedDevices, removed, revokedTokens] = await Promise.all([
    ctx.db.select({ id: devices.id }).from(devices).where(eq(devices.status, 'revoked')),
    // Removed devices were revoked first; their pull tokens stay refused until the last one expired.
    ctx.db.select({ id: removedDevices.deviceId }).from(removedDevices).where(gt(removedDevices.removedAt, since)),
    ctx.db.select({ id: operatorTokens.id }).from(operatorTokens).where(and(isNotNull(operatorTokens.revokedAt), gt(operatorTokens.revokedAt, since))),
  ]);
  return {
    kids: ctx.keys.revokedKids(),
    subjects: [...revokedDevices.map((d) => `device:${d.id}`), ...removed.map((d) => `device:${d.id}`), ...revokedTokens.map((t) => `operator:${t.id}`)],
  };
}
