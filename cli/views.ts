/**
 * The CLI's own output shapes (`--output json`, documented in cli/README.md and kept stable) and
 * how each is made from an answer that already passed the contract's schema (protocol/). Nothing
 * here guesses: every input field is typed by the contract.
 */
import type { z } from 'zod';
import type { createCampaignBody } from '../protocol/campaign-spec.js';
import type { campaignSummary, campaignView } from '../protocol/campaigns.js';
import type { deviceSummary, deviceTwin, importResult, serviceTwin } from '../protocol/devices.js';
import type { manifestDiff, manifestSummary, manifestView } from '../protocol/manifests.js';
import type { auditEntry, createdToken, tokenView } from '../protocol/operators.js';
import type { CampaignProgress, FailingDevice, WaveProgress } from './progress.js';

export type TokenInfo = z.infer<typeof tokenView>;
export type CreatedToken = z.infer<typeof createdToken>;

export interface AuditEntry extends Omit<z.infer<typeof auditEntry>, 'id'> {
  /** The entry id as text, as `audit --since` takes it. */
  id: string;
}

export interface DeviceSummary {
  serial: string;
  id: string;
  /** registered (imported, not enrolled yet), enrolled, revoked. */
  status: z.infer<typeof deviceSummary>['status'];
  labels: Record<string, string>;
  online: boolean;
  lastSeenAt: string | null;
  /** name@version assigned to the device (its desired state), and that assignment's sequence. */
  desired: string | null;
  desiredSequence: number | null;
  /** Release phase the device last reported. */
  phase: string | null;
}

export type ServiceTwin = z.infer<typeof serviceTwin>;
type ServerTwin = z.infer<typeof deviceTwin>;

export interface Twin {
  device: DeviceSummary;
  enrolledAt: string | null;
  previousRelease: string | null;
  desired: ServerTwin['desired'];
  /** The device's last report: `bytes` is its download's progress, in the device's own words. */
  reported: ServerTwin['reported'];
  services: Record<string, ServiceTwin>;
  /** The device runs exactly its desired release, every service up and not unhealthy. */
  inSync: boolean;
  /** Each difference between desired and reported, in words. */
  drift: string[];
}

export type ManifestInfo = Omit<z.infer<typeof manifestSummary>, 'id'>;
export interface ManifestDetail extends ManifestInfo {
  /** service → pinned image reference (repository@sha256:…). */
  services: Record<string, string>;
  spec: z.infer<typeof manifestView>['spec'];
  /** What it asks for beyond a plain container (manifests/privileges.ts). */
  privileges: z.infer<typeof manifestView>['privileges'];
  /** The variables it uses (values from `berth vars`). */
  variables: z.infer<typeof manifestView>['variables'];
  /** Publish only: keys accepted with a warning. */
  warnings: NonNullable<z.infer<typeof manifestView>['warnings']>;
}
export interface PublishResult extends ManifestDetail {
  /** false when the same name@version with the same content was already published (a no-op). */
  created: boolean;
}

type ServerDiff = z.infer<typeof manifestDiff>;
export type FieldChange = ServerDiff['settings'][number];
export interface ServiceChange extends Omit<ServerDiff['services'][number], 'image'> {
  /** null when the image is the same. */
  image: { from: string | null; to: string | null } | null;
}
export interface ManifestDiff extends Omit<ServerDiff, 'services'> {
  services: ServiceChange[];
}

export interface ImportResult extends z.infer<typeof importResult> {
  total: number;
}

export type CampaignRules = z.infer<typeof campaignView>['rules'];
type ServerCampaign = z.infer<typeof campaignSummary> & Partial<Pick<z.infer<typeof campaignView>, 'rules' | 'window' | 'soakUntil' | 'devices' | 'waves' | 'failing' | 'bytes'>>;

export interface Campaign extends CampaignProgress {
  name: string;
  selector: string;
  /** 1-based wave being rolled out (or soaked after it passed). */
  currentWave: number;
  /** null in `campaign list` (use `campaign status` for the rules and the progress). */
  rules: CampaignRules | null;
  window: { cron: string; duration: string; tz: string; open: boolean; opensAt: string | null; closesAt: string | null } | null;
  soakUntil: string | null;
  /** Devices of the campaign by state, all waves together. */
  devices: Record<string, number>;
  /** The update's bytes over the devices that reported on this campaign's assignment; null in `campaign list`. */
  bytes: z.infer<typeof campaignView>['bytes'] | null;
  createdAt: string;
  createdBy: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** What `campaign create` sends: the contract's request, before the server's defaults. */
export type CampaignCreate = z.input<typeof createCampaignBody>;

export function toAudit(e: z.infer<typeof auditEntry>): AuditEntry {
  return { ...e, id: String(e.id) };
}

export function toDevice(d: z.infer<typeof deviceSummary>): DeviceSummary {
  return {
    serial: d.serial,
    id: d.id,
    status: d.status,
    labels: d.labels,
    online: d.online,
    lastSeenAt: d.lastSeenAt,
    desired: d.desired?.release ?? null,
    desiredSequence: d.desired?.sequence ?? null,
    phase: d.phase,
  };
}

/** The differences an operator acts on, in words: the release, then each service out of sync. */
export function driftOf(twin: Pick<Twin, 'desired' | 'reported' | 'services'>): string[] {
  const out: string[] = [];
  if (twin.desired) {
    if (!twin.reported) out.push(`no report yet (desired ${twin.desired.release})`);
    else if (twin.reported.running !== twin.desired.release) out.push(`release: desired ${twin.desired.release}, running ${twin.reported.running ?? 'nothing'}`);
  }
  for (const [name, s] of Object.entries(twin.services)) {
    if (s.drift === 'in-sync') continue;
    const detail =
      s.drift === 'image-differs' ? `: desired ${s.desiredImage}, reported ${s.reportedImage}`
      : s.drift === 'not-running' ? `: ${s.status}`
      : s.drift === 'unexpected' ? ` (runs ${s.reportedImage}, not in the desired release)`
      : '';
    out.push(`service ${name} ${s.drift}${detail}`);
  }
  return out;
}

export function toTwin(t: ServerTwin): Twin {
  return {
    device: toDevice({ ...t, desired: t.desired && { release: t.desired.release, sequence: t.desired.sequence }, phase: t.reported?.phase ?? null, running: t.reported?.running ?? null }),
    enrolledAt: t.enrolledAt,
    previousRelease: t.previousRelease,
    desired: t.desired,
    reported: t.reported,
    services: t.services,
    inSync: t.inSync,
    drift: driftOf(t),
  };
}

export function toManifestInfo(m: z.infer<typeof manifestSummary>): ManifestInfo {
  return { name: m.name, version: m.version, digest: m.digest, publishedAt: m.publishedAt, publishedBy: m.publishedBy };
}

export function toManifest(m: z.infer<typeof manifestView>): ManifestDetail {
  const services = Object.fromEntries(Object.entries(m.spec.services).map(([name, s]) => [name, s.image]));
  return { ...toManifestInfo(m), services, spec: m.spec, privileges: m.privileges, variables: m.variables, warnings: m.warnings ?? [] };
}

export function toDiff(d: ServerDiff): ManifestDiff {
  return { ...d, services: d.services.map((s) => ({ service: s.service, change: s.change, image: s.image ?? null, fields: s.fields })) };
}

export function toImport(r: z.infer<typeof importResult>): ImportResult {
  return { total: r.created + r.updated + r.unchanged, ...r };
}

/**
 * A wave's state in words, from the campaign's status and current wave (the server sends counts
 * only): waves before the current one passed; the current one rolls, soaks, or carries the
 * campaign's end state; later ones wait, or were skipped when the campaign ended early.
 */
export function waveState(index: number, currentWave: number | null, status: string, soaking: boolean): string {
  if (status === 'completed') return 'passed';
  if (currentWave === null || status === 'draft') return 'pending';
  if (index < currentWave) return 'passed';
  if (index > currentWave) return status === 'failed' || status === 'aborted' ? 'skipped' : 'pending';
  if (status === 'running') return soaking ? 'soaking' : 'rolling';
  return status;
}

export function toCampaign(c: ServerCampaign): Campaign {
  let previousTarget = 0;
  const waves = (c.waves ?? []).map((w): WaveProgress => {
    // Late joiners can make a wave hold more than its target delta; show what it holds.
    const holds = Object.entries(w.devices).filter(([k]) => k !== 'left').reduce((a, [, n]) => a + n, 0);
    const size = Math.max(w.cumulativeDevices - previousTarget, holds);
    previousTarget = Math.max(previousTarget, w.cumulativeDevices);
    return { index: w.wave, size, state: waveState(w.wave, c.currentWave, c.status, (c.soakUntil ?? null) !== null), counts: w.devices };
  });
  const w = c.window ?? null;
  return {
    id: c.id,
    name: c.name,
    manifest: c.manifest,
    selector: c.selector,
    status: c.status,
    statusReason: c.statusReason,
    currentWave: c.currentWave,
    rules: c.rules ?? null,
    window: w && { cron: w.cron, duration: w.duration, tz: w.tz, open: w.open, opensAt: w.open ? null : w.opensAt, closesAt: w.open ? w.closesAt : null },
    soakUntil: c.soakUntil ?? null,
    devices: c.devices ?? {},
    bytes: c.bytes ?? null,
    waves,
    failing: (c.failing ?? []).map((f): FailingDevice => ({ serial: f.serial, wave: f.wave, error: f.error })),
    createdAt: c.createdAt,
    createdBy: c.createdBy,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
  };
}
