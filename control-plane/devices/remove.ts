import { and, eq } from 'drizzle-orm';
import type { ControlPlaneContext, Tx } from '../context.js';
import { campaignDevices, campaigns, desired, devicePresence, deviceSightings, devices, deviceSecrets, removedDevices, reported, reportHistory, variables } from '../db/schema.js';
import { HttpError, type OperatorActor } from '../http.js';

/**
 * Removes a revoked device and everything kept for it, in one transaction (issue 16): its desired
 * and reported state, report history, sighting, presence, its memberships of finished campaigns, the
 * variables and secrets set for it alone, and pending enrollment challenges. Refused (nothing
 * written) unless it is revoked and no active campaign holds it. A tombstone keeps its id on the
 * registry proxy's revocation list (operators/revocations.ts) while a pull token of it may live.
 * Foreign keys are on: a table that still pointed at the device would abort the whole removal.
 */
export async function removeDevice(ctx: Pick<ControlPlaneContext, 'audit' | 'now'>, tx: Tx, serial: string, actor: OperatorActor): Promise<{ serial: string; removed: true }> {
  const d = (await tx.select().from(devices).where(eq(devices.serial, serial)).limit(1))[0];
  if (!d) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`);
  // Revocation first: a device that can still talk to the control plane must not lose its records under it.
  if (d.status !== 'revoked') throw new HttpError(409, 'device-not-revoked', `device ${serial} is ${d.status}; revoke it first (berth devices revoke ${serial})`);
  const memberships = await tx
    .select({ campaignId: campaignDevices.campaignId, active: campaignDevices.active, status: campaigns.status })
    .from(campaignDevices)
    .innerJoin(campaigns, eq(campaigns.id, campaignDevices.campaignId))
    .where(eq(campaignDevices.deviceId, d.id));
  const holding = memberships.filter((m) => m.active === 1).map((m) => m.campaignId);
  if (holding.length) throw new HttpError(409, 'device-in-campaign', `device ${serial} is still held by campaign ${holding.join(', ')}; wait for it to finish or abort it`);
  const secretRows = await tx.select({ name: deviceSecrets.name }).from(deviceSecrets).where(and(eq(deviceSecrets.scope, 'device'), eq(deviceSecrets.target, d.id)));
  const variableRows = await tx.select({ name: variables.name }).from(variables).where(and(eq(variables.scope, 'device'), eq(variables.target, d.id)));

  await tx.delete(reportHistory).where(eq(reportHistory.deviceId, d.id));
  await tx.delete(reported).where(eq(reported.deviceId, d.id));
  await tx.delete(desired).where(eq(desired.deviceId, d.id));
  await tx.delete(devicePresence).where(eq(devicePresence.deviceId, d.id));
  await tx.delete(deviceSightings).where(eq(deviceSightings.deviceId, d.id));
  await tx.delete(campaignDevices).where(eq(campaignDevices.deviceId, d.id));
  await tx.delete(deviceSecrets).where(and(eq(deviceSecrets.scope, 'device'), eq(deviceSecrets.target, d.id)));
  await tx.delete(variables).where(and(eq(variables.scope, 'device'), eq(variables.target, d.id)));
  await tx.delete(devices).where(eq(devices.id, d.id));
  const now = ctx.now().getTime();
  await tx.insert(removedDevices).values({ deviceId: d.id, serial, removedAt: now, removedBy: `operator:${actor.id}` }).onConflictDoNothing();
  await ctx.audit(tx, {
    actor,
    action: 'device.remove',
    target: serial,
    before: {
      id: d.id,
      status: d.status,
      labels: JSON.parse(d.labels) as Record<string, string>,
      campaigns: memberships.map((m) => m.campaignId),
      secrets: secretRows.map((s) => s.name),
      variables: variableRows.map((v) => v.name),
    },
    after: null,
  });
  return { serial, removed: true };
}
