/**
 * The control plane's operator API as the CLI uses it. Every route and response shape lives here:
 * when the server's shapes move, this file adapts them and the CLI's own (documented, stable)
 * output shapes stay as they are.
 */
import { HttpClient, type Fetch } from './http.js';
import type { CampaignProgress, FailingDevice, WaveProgress } from './progress.js';

type Json = Record<string, unknown>;

// ---- the CLI's stable output shapes (documented in cli/README.md) ----

export interface TokenInfo {
  id: string;
  name: string;
  role: string;
  createdAt: string | null;
  createdBy: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}
export interface CreatedToken extends TokenInfo {
  token: string;
}

export interface AuditEntry {
  id: string;
  at: string | null;
  actor: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

export interface DeviceSummary {
  serial: string;
  id: string | null;
  /** registered (imported, not enrolled yet), enrolled, revoked. */
  status: string;
  labels: Record<string, string>;
  online: boolean | null;
  lastSeenAt: string | null;
  /** name@version assigned to the device (its desired state), and that assignment's sequence. */
  desired: string | null;
  desiredSequence: number | null;
  /** Release phase the device last reported. */
  phase: string | null;
}

export interface ServiceTwin {
  desiredImage: string | null;
  reportedImage: string | null;
  status: string | null;
  health: string | null;
  restarts: number | null;
  lastError: string | null;
  /** in-sync, missing, image-differs, not-running, unhealthy, unexpected. */
  drift: string;
}

export interface Twin {
  device: DeviceSummary;
  enrolledAt: string | null;
  previousRelease: string | null;
  desired: { release: string; sequence: number | null; campaign: string | null } | null;
  reported: {
    sequence: number | null;
    desiredSequence: number | null;
    running: string | null;
    phase: string;
    bytes: { done: number; total: number };
    error: string | null;
    at: string | null;
    receivedAt: string | null;
  } | null;
  services: Record<string, ServiceTwin>;
  /** The device runs exactly its desired release, every service up and not unhealthy. */
  inSync: boolean;
  /** Each difference between desired and reported, in words. */
  drift: string[];
}

export interface ManifestInfo {
  name: string;
  version: string;
  digest: string;
  publishedAt: string | null;
  publishedBy: string | null;
}
export interface ManifestDetail extends ManifestInfo {
  /** service → pinned image reference (repository@sha256:…). */
  services: Record<string, string>;
  spec: unknown;
}
export interface PublishResult extends ManifestDetail {
  /** false when the same name@version with the same content was already published (a no-op). */
  created: boolean;
}

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}
export interface ServiceChange {
  service: string;
  change: 'added' | 'removed' | 'changed';
  image: { from: string | null; to: string | null } | null;
  fields: FieldChange[];
}
export interface ManifestDiff {
  from: string;
  to: string;
  services: ServiceChange[];
  /** Top-level settings outside services (volumes, update strategy). */
  settings: FieldChange[];
}

export interface ImportResult {
  total: number;
  created: number;
  updated: number;
  unchanged: number;
}

export interface CampaignRules {
  waves: string[];
  /** Shares 0..1. */
  success: number | null;
  maxFailures: number | null;
  deviceTimeout: string | null;
  soak: string | null;
  onFailure: string | null;
}

export interface Campaign extends CampaignProgress {
  name: string | null;
  selector: string;
  /** 1-based wave being rolled out (or soaked after it passed). */
  currentWave: number | null;
  rules: CampaignRules | null;
  window: { cron: string; duration: string; tz: string; open: boolean; opensAt: string | null; closesAt: string | null } | null;
  soakUntil: string | null;
  /** Devices of the campaign by state, all waves together. */
  devices: Record<string, number>;
  createdAt: string | null;
  createdBy: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface CampaignCreate {
  name?: string;
  manifest: string;
  selector: string;
  waves: string[];
  success?: number;
  maxFailures?: number;
  deviceTimeout?: string;
  soak?: string;
  window?: { cron: string; duration: string; tz: string };
  onFailure?: 'pause' | 'rollback';
  supersede?: boolean;
  start?: boolean;
}

// ---- tolerant readers: the server's JSON → the shapes above ----

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}
function str(v: unknown): string | null {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
}
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
/** Times arrive as ISO strings or epoch milliseconds; the CLI always shows ISO. */
export function isoTime(v: unknown): string | null {
  if (typeof v === 'number' && Number.isFinite(v)) return new Date(v).toISOString();
  if (typeof v === 'string' && v) return v;
  return null;
}
function strRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
function list(v: unknown, ...keys: string[]): unknown[] {
  if (Array.isArray(v)) return v;
  for (const k of keys) {
    const x = obj(v)[k];
    if (Array.isArray(x)) return x;
  }
  return [];
}
export function toToken(v: unknown): TokenInfo {
  const o = obj(v);
  return {
    id: str(o.id) ?? '',
    name: str(o.name) ?? '',
    role: str(o.role) ?? '',
    createdAt: isoTime(o.createdAt),
    createdBy: str(o.createdBy),
    expiresAt: isoTime(o.expiresAt),
    revokedAt: isoTime(o.revokedAt),
  };
}

export function toAudit(v: unknown): AuditEntry {
  const o = obj(v);
  return { id: str(o.id) ?? '', at: isoTime(o.at), actor: str(o.actor) ?? '', action: str(o.action) ?? '', target: str(o.target) ?? '', before: o.before ?? null, after: o.after ?? null };
}

export function toDevice(v: unknown): DeviceSummary {
  const o = obj(v);
  const desired = obj(o.desired);
  return {
    serial: str(o.serial) ?? '',
    id: str(o.id),
    status: str(o.status) ?? 'unknown',
    labels: strRecord(o.labels),
    online: typeof o.online === 'boolean' ? o.online : null,
    lastSeenAt: isoTime(o.lastSeenAt),
    desired: str(desired.release),
    desiredSequence: num(desired.sequence),
    phase: str(o.phase) ?? str(obj(o.reported).phase),
  };
}

function toServiceTwin(v: unknown): ServiceTwin {
  const o = obj(v);
  return {
    desiredImage: str(o.desiredImage),
    reportedImage: str(o.reportedImage),
    status: str(o.status),
    health: str(o.health),
    restarts: num(o.restarts),
    lastError: str(o.lastError),
    drift: str(o.drift) ?? 'unknown',
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

export function toTwin(v: unknown): Twin {
  const o = obj(v);
  const dv = o.desired === null || o.desired === undefined ? null : obj(o.desired);
  const rv = o.reported === null || o.reported === undefined ? null : obj(o.reported);
  const services = Object.fromEntries(Object.entries(obj(o.services)).map(([k, s]) => [k, toServiceTwin(s)]));
  const desired = dv ? { release: str(dv.release) ?? '', sequence: num(dv.sequence), campaign: str(dv.campaign) } : null;
  const reported = rv
    ? {
        sequence: num(rv.sequence),
        desiredSequence: num(rv.desiredSequence),
        running: str(rv.running),
        phase: str(rv.phase) ?? 'unknown',
        bytes: { done: num(rv.bytesDone) ?? num(obj(rv.bytes).done) ?? 0, total: num(rv.bytesTotal) ?? num(obj(rv.bytes).total) ?? 0 },
        error: str(rv.error),
        at: isoTime(rv.at),
        receivedAt: isoTime(rv.receivedAt),
      }
    : null;
  const device = { ...toDevice(o), desired: desired?.release ?? null, desiredSequence: desired?.sequence ?? null, phase: reported?.phase ?? null };
  return {
    device,
    enrolledAt: isoTime(o.enrolledAt),
    previousRelease: str(o.previousRelease),
    desired,
    reported,
    services,
    inSync: o.inSync === true,
    drift: driftOf({ desired, reported, services }),
  };
}

function servicesImages(spec: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, s] of Object.entries(obj(obj(spec).services))) {
    const image = str(obj(s).image);
    if (image) out[name] = image;
  }
  return out;
}

function toManifestInfo(v: unknown): ManifestInfo {
  const o = obj(v);
  return { name: str(o.name) ?? '', version: str(o.version) ?? '', digest: str(o.digest) ?? '', publishedAt: isoTime(o.publishedAt), publishedBy: str(o.publishedBy) };
}

export function toManifest(v: unknown): ManifestDetail {
  const o = obj(v);
  return { ...toManifestInfo(o), services: servicesImages(o.spec), spec: o.spec ?? null };
}

function toFieldChanges(v: unknown): FieldChange[] {
  return list(v).map((x) => {
    const c = obj(x);
    return { field: str(c.field) ?? '', from: c.from ?? null, to: c.to ?? null };
  });
}

export function toDiff(v: unknown): ManifestDiff {
  const o = obj(v);
  return {
    from: str(o.from) ?? '',
    to: str(o.to) ?? '',
    services: list(o.services).map((x): ServiceChange => {
      const c = obj(x);
      const change = str(c.change);
      const image = c.image ? { from: str(obj(c.image).from), to: str(obj(c.image).to) } : null;
      return { service: str(c.service) ?? '', change: change === 'added' || change === 'removed' ? change : 'changed', image, fields: toFieldChanges(c.fields) };
    }),
    settings: toFieldChanges(o.settings),
  };
}

export function toImport(v: unknown): ImportResult {
  const o = obj(v);
  const created = num(o.created) ?? num(o.imported) ?? 0;
  const updated = num(o.updated) ?? 0;
  const unchanged = num(o.unchanged) ?? 0;
  return { total: num(o.total) ?? created + updated + unchanged, created, updated, unchanged };
}

function counts(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(obj(v))) if (typeof n === 'number') out[k] = n;
  return out;
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

export function toCampaign(v: unknown): Campaign {
  const o = obj(v);
  const status = str(o.status) ?? 'unknown';
  const currentWave = num(o.currentWave);
  const soakUntil = isoTime(o.soakUntil);
  let previousTarget = 0;
  const waves = list(o.waves).map((x, i): WaveProgress => {
    const w = obj(x);
    const c = counts(w.devices);
    const cumulative = num(w.cumulativeDevices) ?? 0;
    // Late joiners can make a wave hold more than its target delta; show what it holds.
    const size = Math.max(cumulative - previousTarget, Object.entries(c).filter(([k]) => k !== 'left').reduce((a, [, n]) => a + n, 0));
    previousTarget = Math.max(previousTarget, cumulative);
    const index = num(w.wave) ?? i + 1;
    return { index, size, state: waveState(index, currentWave, status, soakUntil !== null), counts: c };
  });
  const rv = o.rules === undefined || o.rules === null ? null : obj(o.rules);
  const wv = o.window === undefined || o.window === null ? null : obj(o.window);
  return {
    id: str(o.id) ?? '',
    name: str(o.name),
    manifest: str(o.manifest) ?? '',
    selector: str(o.selector) ?? '',
    status,
    statusReason: str(o.statusReason),
    currentWave,
    rules: rv
      ? { waves: list(rv.waves).map((w) => String(w)), success: num(rv.success), maxFailures: num(rv.maxFailures), deviceTimeout: str(rv.deviceTimeout), soak: str(rv.soak), onFailure: str(rv.onFailure) }
      : null,
    window: wv
      ? { cron: str(wv.cron) ?? '', duration: str(wv.duration) ?? '', tz: str(wv.tz) ?? 'UTC', open: wv.open === true, opensAt: isoTime(wv.opensAt), closesAt: isoTime(wv.closesAt) }
      : null,
    soakUntil,
    devices: counts(o.devices),
    waves,
    failing: list(o.failing).map((x): FailingDevice => {
      const f = obj(x);
      return { serial: str(f.serial) ?? str(f.deviceId) ?? '', wave: num(f.wave), error: str(f.error) };
    }),
    createdAt: isoTime(o.createdAt),
    createdBy: str(o.createdBy),
    startedAt: isoTime(o.startedAt),
    finishedAt: isoTime(o.finishedAt),
  };
}

// ---- the routes ----

const enc = encodeURIComponent;

export class BerthClient {
  private readonly http: HttpClient;
  constructor(server: string, token: string | undefined, fetchImpl?: Fetch) {
    this.http = new HttpClient(server, token, fetchImpl);
  }
  get server(): string {
    return this.http.server;
  }

  async createToken(body: { role: string; name: string; expiresInSeconds?: number }): Promise<CreatedToken> {
    const v = obj(await this.http.request('creating a token', 'POST', '/v1/tokens', { body: { role: body.role, name: body.name, expiresIn: body.expiresInSeconds } }));
    return { ...toToken(v), token: str(v.token) ?? '' };
  }
  async listTokens(): Promise<TokenInfo[]> {
    return list(await this.http.request('listing tokens', 'GET', '/v1/tokens'), 'tokens').map(toToken);
  }
  async revokeToken(id: string): Promise<TokenInfo> {
    return toToken(await this.http.request(`revoking token ${id}`, 'DELETE', `/v1/tokens/${enc(id)}`));
  }

  async audit(since?: string): Promise<AuditEntry[]> {
    return list(await this.http.request('reading the audit log', 'GET', '/v1/audit', { query: { since } }), 'entries').map(toAudit);
  }

  async importDevices(text: string, contentType: string): Promise<ImportResult> {
    return toImport(await this.http.request('importing manufacturing records', 'POST', '/v1/devices/import', { body: text, contentType, timeoutMs: 300_000 }));
  }
  async listDevices(selector?: string): Promise<DeviceSummary[]> {
    return list(await this.http.request('listing devices', 'GET', '/v1/devices', { query: { selector, limit: '10000' } }), 'devices').map(toDevice);
  }
  async twin(serial: string): Promise<Twin> {
    return toTwin(await this.http.request(`reading device ${serial}`, 'GET', `/v1/devices/${enc(serial)}`));
  }
  async labelDevice(serial: string, edit: { set: Record<string, string>; remove: string[] }): Promise<{ serial: string; labels: Record<string, string>; changed: boolean }> {
    const v = obj(await this.http.request(`labelling device ${serial}`, 'PATCH', `/v1/devices/${enc(serial)}/labels`, { body: edit }));
    return { serial: str(v.serial) ?? serial, labels: strRecord(v.labels), changed: v.changed === true };
  }
  async revokeDevice(serial: string): Promise<{ serial: string; status: string }> {
    const v = obj(await this.http.request(`revoking device ${serial}`, 'POST', `/v1/devices/${enc(serial)}/revoke`, { body: {} }));
    return { serial: str(v.serial) ?? serial, status: str(v.status) ?? 'revoked' };
  }

  async publishManifest(source: string, filename: string): Promise<PublishResult> {
    const { status, body } = await this.http.exchange('publishing the manifest', 'POST', '/v1/manifests', { body: { source, filename }, timeoutMs: 120_000 });
    return { ...toManifest(body), created: status === 201 };
  }
  async listManifests(): Promise<ManifestInfo[]> {
    return list(await this.http.request('listing manifests', 'GET', '/v1/manifests'), 'manifests').map(toManifestInfo);
  }
  async manifest(name: string, version: string): Promise<ManifestDetail> {
    return toManifest(await this.http.request(`reading manifest ${name}@${version}`, 'GET', `/v1/manifests/${enc(name)}/${enc(version)}`));
  }
  async diffManifests(name: string, from: string, to: string): Promise<ManifestDiff> {
    return toDiff(await this.http.request(`comparing ${name}@${from} and ${name}@${to}`, 'GET', `/v1/manifests/${enc(name)}/diff`, { query: { from, to } }));
  }

  async createCampaign(body: CampaignCreate): Promise<Campaign> {
    const v = obj(await this.http.request('creating the campaign', 'POST', '/v1/campaigns', { body }));
    return toCampaign(v.campaign ?? v);
  }
  async listCampaigns(): Promise<Campaign[]> {
    return list(await this.http.request('listing campaigns', 'GET', '/v1/campaigns'), 'campaigns').map(toCampaign);
  }
  async campaign(id: string, timeoutMs?: number): Promise<Campaign> {
    const v = obj(await this.http.request(`reading campaign ${id}`, 'GET', `/v1/campaigns/${enc(id)}`, { timeoutMs }));
    return toCampaign(v.campaign ?? v);
  }
  async campaignAction(id: string, action: 'start' | 'pause' | 'resume' | 'abort'): Promise<Campaign> {
    const v = obj(await this.http.request(`${action === 'abort' ? 'aborting' : action === 'pause' ? 'pausing' : action === 'resume' ? 'resuming' : 'starting'} campaign ${id}`, 'POST', `/v1/campaigns/${enc(id)}/${action}`, { body: {} }));
    return toCampaign(v.campaign ?? v);
  }
}
