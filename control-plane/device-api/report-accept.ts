import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../context.js';
import { ReportWriter } from './report-writer.js';

/**
 * What `POST /v1/device/report` does once its device and body are known, shared by the Hono route
 * (routes.ts) and the one on node:http (report-direct.ts): the sighting, then the report written in
 * the context's one batch writer (report-writer.ts), so reports served either way share batches;
 * answered 202 after the commit that holds it, so an acknowledged report is durable.
 */

const writers = new WeakMap<ControlPlaneContext, ReportWriter>();

/** The context's one ReportWriter (made on first use). */
function writerOf(ctx: ControlPlaneContext): ReportWriter {
  let w = writers.get(ctx);
  if (!w) writers.set(ctx, (w = new ReportWriter(ctx)));
  return w;
}

export async function acceptReport(ctx: ControlPlaneContext, deviceId: string, report: DeviceReport): Promise<{ status: 202; body: { accepted: boolean } }> {
  const now = ctx.now().getTime();
  ctx.seen.touch(deviceId, now);
  const out = await writerOf(ctx).submit(deviceId, report, now);
  return { status: 202, body: { accepted: out.accepted } };
}
