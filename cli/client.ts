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
  status: string;
  labels: Record<string, string>;
  enrolledAt: string | null;
  lastSeenAt: string | null;
  online: boolean | null;
  /** name@version assigned (desired) and reported running. */
  desired: string | null;
  running: string | null;
  phase: string | null;
}

export interface ServiceState {
  image: string | null;
  imageId: string | null;
  containerId: string | null;
  status: string | null;
  health: string | null;
  restarts: number | null;
  exitCode: number | null;
  lastError: string | null;
}

export interface DriftItem {
  service: string | null;
  what: string;
  desired: string | null;
  reported: string | null;
}

export interface Twin {
  device: DeviceSummary;
  desired: { manifest: string; digest: string | null; sequence: number | null; campaign: string | null; issuedAt: string | null; services: Record<string, string> } | null;
  reported: {
    sequence: number | null;
    desiredSequence: number | null;
    running: string | null;
    phase: string;
    bytes: { done: number; total: number };
    services: Record<string, ServiceState>;
    error: string | null;
    at: string | null;
    receivedAt: string | null;
  } | null;
  drift: DriftItem[];
  inSync: boolean;
}

export interface ManifestInfo {
  name: string;
  version: string;
  digest: string;
  publishedAt: string | null;
  publishedBy: string | null;
  /** service → pinned image reference. */
  services: Record<string, string>;
}
export interface ManifestDetail extends ManifestInfo {
  spec: unknown;
}
export interface PublishResult extends ManifestInfo {
  /** false when the same name@version with the same content was already published (a no-op). */
  created: boolean;
}

export interface ManifestChange {
  service: string | null;
  path: string;
  kind: 'added' | 'removed' | 'changed';
  from: unknown;
  to: unknown;
}
export interface ManifestDiff {
  name: string;
  from: string;
  to: string;
  changes: ManifestChange[];
}

export interface ImportResult {
  total: number;
  created: number;
  updated: number;
  unchanged: number;
}

export interface Campaign extends CampaignProgress {
  name: string | null;
  selector: string;
  settings: Record<string, unknown>;
  devices: number;
  createdAt: string | null;
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
function release(v: unknown): string | null {
  if (typeof v === 'string') return v;
  const o = obj(v);
  return typeof o.name === 'string' && typeof o.version === 'string' ? `${o.name}@${o.version}` : null;
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
  const reported = obj(o.reported);
  return {
    serial: str(o.serial) ?? '',
    id: str(o.id),
    status: str(o.status) ?? 'unknown',
    labels: strRecord(o.labels),
    enrolledAt: isoTime(o.enrolledAt),
    lastSeenAt: isoTime(o.lastSeenAt),
    online: typeof o.online === 'boolean' ? o.online : null,
    desired: release(o.desired) ?? release(obj(o.desired).manifest) ?? str(o.desiredManifest),
    running: str(o.running) ?? str(reported.running),
    phase: str(o.phase) ?? str(reported.phase),
  };
}

function toService(v: unknown): ServiceState {
  const o = obj(v);
  return {
    image: str(o.image),
    imageId: str(o.imageId),
    containerId: str(o.containerId),
    status: str(o.status),
    health: str(o.health),
    restarts: num(o.restarts),
    exitCode: num(o.exitCode),
    lastError: str(o.lastError),
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

/** Where desired and reported differ; the server's own list wins when it sends one. */
export function computeDrift(twin: Omit<Twin, 'drift' | 'inSync'>): DriftItem[] {
  const drift: DriftItem[] = [];
  const d = twin.desired;
  const r = twin.reported;
  if (!d) return drift;
  if (!r) return [{ service: null, what: 'no report yet', desired: d.manifest, reported: null }];
  if (r.running !== d.manifest) drift.push({ service: null, what: 'release', desired: d.manifest, reported: r.running });
  for (const [name, image] of Object.entries(d.services)) {
    const s = r.services[name];
    const digest = image.includes('@') ? image.slice(image.indexOf('@') + 1) : image;
    if (!s) drift.push({ service: name, what: 'missing', desired: image, reported: null });
    else if (s.image !== image && !(s.image ?? '').endsWith(digest) && s.imageId !== digest) drift.push({ service: name, what: 'image', desired: image, reported: s.image });
    else if (s.status !== 'running') drift.push({ service: name, what: 'status', desired: 'running', reported: s.status });
    else if (s.health === 'unhealthy') drift.push({ service: name, what: 'health', desired: 'healthy', reported: s.health });
  }
  for (const name of Object.keys(r.services)) if (!(name in d.services)) drift.push({ service: name, what: 'unexpected', desired: null, reported: r.services[name].image });
  return drift;
}

export function toTwin(v: unknown): Twin {
  const o = obj(v);
  const dv = o.desired === null || o.desired === undefined ? null : obj(o.desired);
  const rv = o.reported === null || o.reported === undefined ? null : obj(o.reported);
  const device = toDevice(o.device ?? o);
  const desired = dv
    ? {
        manifest: release(dv.manifest) ?? release(dv) ?? '',
        digest: str(obj(dv.manifest).digest) ?? str(dv.digest),
        sequence: num(dv.sequence),
        campaign: str(dv.campaign) ?? str(dv.campaignId),
        issuedAt: isoTime(dv.issuedAt),
        services: Object.keys(obj(dv.services)).length ? strRecord(dv.services) : servicesImages(dv.spec),
      }
    : null;
  const bytes = obj(rv?.bytes);
  const reported = rv
    ? {
        sequence: num(rv.sequence),
        desiredSequence: num(rv.desiredSequence),
        running: str(rv.running),
        phase: str(rv.phase) ?? 'unknown',
        bytes: { done: num(bytes.done) ?? num(rv.bytesDone) ?? 0, total: num(bytes.total) ?? num(rv.bytesTotal) ?? 0 },
        services: Object.fromEntries(Object.entries(obj(rv.services)).map(([k, s]) => [k, toService(s)])),
        error: str(rv.error),
        at: isoTime(rv.at),
        receivedAt: isoTime(rv.receivedAt),
      }
    : null;
  const base = { device: { ...device, desired: device.desired ?? desired?.manifest ?? null, running: device.running ?? reported?.running ?? null, phase: device.phase ?? reported?.phase ?? null }, desired, reported };
  const serverDrift = Array.isArray(o.drift)
    ? o.drift.map((x): DriftItem => {
        const d = obj(x);
        return { service: str(d.service), what: str(d.what) ?? str(d.field) ?? str(d.kind) ?? 'differs', desired: str(d.desired), reported: str(d.reported) };
      })
    : null;
  const drift = serverDrift ?? computeDrift(base);
  return { ...base, drift, inSync: drift.length === 0 };
}

export function toManifest(v: unknown): ManifestDetail {
  const o = obj(v);
  const spec = o.spec ?? o.manifest ?? null;
  const services = Object.keys(obj(o.services)).length && Object.values(obj(o.services)).every((x) => typeof x === 'string') ? strRecord(o.services) : servicesImages(spec ?? o);
  return {
    name: str(o.name) ?? str(obj(spec).name) ?? '',
    version: str(o.version) ?? str(obj(spec).version) ?? '',
    digest: str(o.digest) ?? '',
    publishedAt: isoTime(o.publishedAt),
    publishedBy: str(o.publishedBy),
    services,
    spec,
  };
}

export function toDiff(v: unknown, name: string, from: string, to: string): ManifestDiff {
  const o = obj(v);
  const changes = list(o, 'changes', 'diff').map((x): ManifestChange => {
    const c = obj(x);
    const kind = str(c.kind) ?? str(c.op) ?? 'changed';
    return {
      service: str(c.service),
      path: str(c.path) ?? str(c.field) ?? '',
      kind: kind === 'added' || kind === 'add' ? 'added' : kind === 'removed' || kind === 'remove' ? 'removed' : 'changed',
      from: c.from ?? c.before ?? null,
      to: c.to ?? c.after ?? null,
    };
  });
  return { name, from, to, changes };
}

export function toImport(v: unknown): ImportResult {
  const o = obj(v);
  const created = num(o.created) ?? num(o.imported) ?? 0;
  const updated = num(o.updated) ?? 0;
  const unchanged = num(o.unchanged) ?? 0;
  return { total: num(o.total) ?? created + updated + unchanged, created, updated, unchanged };
}

function toWave(v: unknown, i: number): WaveProgress {
  const o = obj(v);
  const counts: Record<string, number> = {};
  for (const [k, n] of Object.entries(obj(o.counts ?? o.states))) if (typeof n === 'number') counts[k] = n;
  return { index: num(o.index) ?? i + 1, size: num(o.size) ?? num(o.devices) ?? Object.values(counts).reduce((a, b) => a + b, 0), state: str(o.state) ?? str(o.status) ?? 'pending', counts };
}

export function toCampaign(v: unknown): Campaign {
  const o = obj(v);
  const failing = list(o, 'failing', 'failures').map((x): FailingDevice => {
    const f = obj(x);
    return { serial: str(f.serial) ?? str(f.device) ?? str(f.deviceId) ?? '', state: str(f.state) ?? 'failed', error: str(f.error) ?? str(f.lastError) };
  });
  const waves = list(o, 'waves').map(toWave);
  const settings: Record<string, unknown> = {};
  for (const k of ['waves', 'success', 'maxFailures', 'deviceTimeout', 'deviceTimeoutMs', 'soak', 'soakMs', 'window', 'onFailure']) {
    const x = obj(o.spec)[k] ?? (k === 'waves' ? undefined : o[k]);
    if (x !== undefined) settings[k] = x;
  }
  return {
    id: str(o.id) ?? '',
    name: str(o.name),
    manifest: release(o.manifest) ?? str(o.release) ?? str(obj(o.spec).release) ?? '',
    selector: str(o.selector) ?? str(obj(o.spec).selector) ?? '',
    state: str(o.state) ?? str(o.status) ?? 'unknown',
    waves,
    failing,
    settings,
    devices: num(o.devices) ?? num(o.total) ?? waves.reduce((a, w) => a + w.size, 0),
    createdAt: isoTime(o.createdAt),
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

  async whoami(): Promise<unknown> {
    return this.http.request('checking the token', 'GET', '/v1/tokens/self');
  }

  async createToken(body: { role: string; name?: string; expiresIn?: string }): Promise<CreatedToken> {
    const v = obj(await this.http.request('creating a token', 'POST', '/v1/tokens', { body }));
    return { ...toToken(v.info ?? v), token: str(v.token) ?? '' };
  }
  async listTokens(): Promise<TokenInfo[]> {
    return list(await this.http.request('listing tokens', 'GET', '/v1/tokens'), 'tokens').map(toToken);
  }
  async revokeToken(id: string): Promise<void> {
    await this.http.request(`revoking token ${id}`, 'DELETE', `/v1/tokens/${enc(id)}`);
  }

  async audit(since?: string): Promise<AuditEntry[]> {
    return list(await this.http.request('reading the audit log', 'GET', '/v1/audit', { query: { since } }), 'entries', 'audit').map(toAudit);
  }

  async importDevices(text: string, contentType: string): Promise<ImportResult> {
    return toImport(await this.http.request('importing manufacturing records', 'POST', '/v1/devices/import', { body: text, contentType, timeoutMs: 300_000 }));
  }
  async listDevices(selector?: string): Promise<DeviceSummary[]> {
    return list(await this.http.request('listing devices', 'GET', '/v1/devices', { query: { selector } }), 'devices').map(toDevice);
  }
  async twin(serial: string): Promise<Twin> {
    return toTwin(await this.http.request(`reading device ${serial}`, 'GET', `/v1/devices/${enc(serial)}`));
  }
  async labelDevice(serial: string, edit: { set: Record<string, string>; remove: string[] }): Promise<DeviceSummary> {
    return toDevice(await this.http.request(`labelling device ${serial}`, 'PATCH', `/v1/devices/${enc(serial)}/labels`, { body: edit }));
  }
  async revokeDevice(serial: string): Promise<DeviceSummary> {
    return toDevice(await this.http.request(`revoking device ${serial}`, 'POST', `/v1/devices/${enc(serial)}/revoke`, { body: {} }));
  }

  async publishManifest(source: string, contentType: string): Promise<PublishResult> {
    const v = obj(await this.http.request('publishing the manifest', 'POST', '/v1/manifests', { body: source, contentType, timeoutMs: 120_000 }));
    const m = toManifest(v.manifest ?? v);
    return { ...m, created: typeof v.created === 'boolean' ? v.created : true };
  }
  async listManifests(): Promise<ManifestInfo[]> {
    return list(await this.http.request('listing manifests', 'GET', '/v1/manifests'), 'manifests').map(toManifest).map(({ spec: _spec, ...info }) => info);
  }
  async manifest(name: string, version: string): Promise<ManifestDetail> {
    return toManifest(await this.http.request(`reading manifest ${name}@${version}`, 'GET', `/v1/manifests/${enc(name)}/${enc(version)}`));
  }
  async diffManifests(name: string, from: string, to: string): Promise<ManifestDiff> {
    return toDiff(await this.http.request(`comparing ${name}@${from} and ${name}@${to}`, 'GET', `/v1/manifests/${enc(name)}/diff`, { query: { from, to } }), name, from, to);
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
