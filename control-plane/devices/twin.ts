import type { z } from 'zod';
import type { reportedView, ServiceDrift, serviceTwin, twinView } from '../../protocol/devices.js';
import type { ReleasePhase, ServiceReport } from '../../protocol/device.js';
import type { PinnedManifest } from '../../manifests/model.js';

export interface TwinInput {
  desired: { sequence: number; name: string; version: string; spec: PinnedManifest; campaignId: string | null } | null;
  reported: {
    sequence: number;
    desiredSequence: number | null;
    running: string | null;
    phase: ReleasePhase;
    /** As the device sent it: what its download has fetched of the whole, and of what the layers weigh in full. */
    bytes: { done: number; total: number; full?: number; delta?: boolean };
    services: Record<string, ServiceReport>;
    error: string | null;
    at: string;
    receivedAt: number;
  } | null;
  lastSeenAt: number | null;
  now: number;
  offlineAfterMs: number;
}

/** A `reported` row's bytes as the device sent them; `full` and `delta` only when it said (0105). */
export function bytesOf(r: { bytesDone: number; bytesTotal: number; bytesFull: number | null; bytesDelta: number | null }): NonNullable<TwinInput['reported']>['bytes'] {
  return {
    done: r.bytesDone,
    total: r.bytesTotal,
    ...(r.bytesFull !== null ? { full: r.bytesFull } : {}),
    ...(r.bytesDelta !== null ? { delta: r.bytesDelta === 1 } : {}),
  };
}

/** The twin as the contract states it (protocol/devices.ts): the compiler holds computeTwin to it. */
export type TwinView = z.infer<typeof twinView>;
type ServiceTwin = z.infer<typeof serviceTwin>;
type ReportedView = z.infer<typeof reportedView>;

function digestOf(image: string | undefined | null): string | null {
  if (!image) return null;
  const at = image.lastIndexOf('@');
  return at >= 0 ? image.slice(at + 1) : null;
}

function serviceDrift(want: string | null, got: ServiceReport | undefined): ServiceDrift {
  if (want === null) return 'unexpected';
  if (!got || got.status === 'missing') return 'missing';
  const wantDigest = digestOf(want);
  if (wantDigest !== digestOf(got.image) && got.imageId !== wantDigest && got.image !== want) return 'image-differs';
  if (got.status !== 'running') return 'not-running';
  if (got.health === 'unhealthy') return 'unhealthy';
  return 'in-sync';
}

/** Desired versus reported, per service, plus online/offline: what an operator reads as the twin. */
export function computeTwin(t: TwinInput): TwinView {
  const online = t.lastSeenAt !== null && t.now - t.lastSeenAt <= t.offlineAfterMs;
  const want = t.desired?.spec.services ?? {};
  const got = t.reported?.services ?? {};
  const services: Record<string, ServiceTwin> = {};
  for (const name of new Set([...Object.keys(want), ...Object.keys(got)])) {
    const w = want[name]?.image ?? null;
    const g = got[name];
    services[name] = {
      desiredImage: w,
      reportedImage: g?.image ?? null,
      status: g?.status ?? null,
      health: g?.health ?? null,
      restarts: g?.restarts ?? null,
      lastError: g?.lastError ?? null,
      drift: serviceDrift(w, g),
    };
  }
  const release = t.desired ? `${t.desired.name}@${t.desired.version}` : null;
  const inSync =
    t.desired !== null &&
    t.reported !== null &&
    t.reported.desiredSequence === t.desired.sequence &&
    t.reported.running === release &&
    t.reported.phase === 'running' &&
    Object.values(services).every((s) => s.drift === 'in-sync');
  let reported: ReportedView | null = null;
  if (t.reported) {
    const { services: _s, receivedAt, ...rest } = t.reported;
    reported = { ...rest, receivedAt: new Date(receivedAt).toISOString() };
  }
  return {
    online,
    lastSeenAt: t.lastSeenAt === null ? null : new Date(t.lastSeenAt).toISOString(),
    desired: t.desired ? { sequence: t.desired.sequence, release: release as string, campaign: t.desired.campaignId } : null,
    reported,
    inSync,
    services,
  };
}
