/**
 * The control plane's operator API as the CLI calls it. Routes, requests and answers are the
 * contract's (protocol/): every answer is parsed with the schema of its route and status, so a
 * server that answers something else is a clear error naming the route and the field, never a
 * silently wrong table. The CLI's own stable output shapes are made in views.ts.
 */
import type { z } from 'zod';
import { campaignRoutes, type CampaignAction } from '../protocol/campaigns.js';
import { devicesRoutes } from '../protocol/devices.js';
import { manifestRoutes } from '../protocol/manifests.js';
import { operatorRoutes } from '../protocol/operators.js';
import { policyRoutes } from '../protocol/policies.js';
import { varsRoutes } from '../protocol/vars.js';
import { secretRoutes, type SecretScope } from '../protocol/secrets.js';
import type { Route } from '../protocol/route.js';
import { CliError } from './errors.js';
import { HttpClient, type Fetch, type RequestOptions } from './http.js';
import { loadTrust, trustingFetch, type HttpsTrust } from '../common/tls-trust.js';
import {
  toAudit, toCampaign, toDevice, toDiff, toImport, toManifest, toManifestInfo, toTwin,
  type AuditEntry, type Campaign, type CampaignCreate, type CreatedToken, type DeviceSummary, type ImportResult,
  type ManifestDetail, type ManifestDiff, type ManifestInfo, type PublishResult, type TokenInfo, type Twin,
} from './views.js';

export type * from './views.js';

/** Rows per request when the CLI walks the device list (the route's default page). */
export const DEVICE_PAGE = 1000;
export { driftOf, waveState } from './views.js';

/** `/v1/devices/:serial` with its parameters filled in, each encoded. */
export function pathOf(route: Route, params: Record<string, string> = {}): string {
  return route.path.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => {
    if (!Object.hasOwn(params, name)) throw new Error(`${route.path}: no value for :${name}`);
    return encodeURIComponent(params[name]);
  });
}

/** An answer that is not what the contract says of its route and status. */
export class ContractError extends CliError {
  constructor(what: string, route: Route, status: number, problem: string) {
    super(
      `${what} failed: the control plane's answer to ${route.method.toUpperCase()} ${route.path} (${status}) does not match the contract: ${problem}`,
      'the CLI and the control plane are probably different releases; use the CLI of the server’s release',
    );
    this.name = 'ContractError';
  }
}

/** What a route answers when it succeeds (refusals become ApiError before any parsing). */
type Success<R extends Route> = Extract<keyof R['responses'], 200 | 201 | 202>;
export type AnswerOf<R extends Route> = { [S in Success<R>]: R['responses'][S] extends { schema: infer T extends z.ZodType } ? z.infer<T> : never }[Success<R>];

/** Parses a JSON answer with the schema the contract gives its route and status. */
export function parseAnswer<R extends Route>(what: string, route: R, status: number, body: unknown): AnswerOf<R> {
  const reply = route.responses[status];
  if (!reply) throw new ContractError(what, route, status, `status ${status} is not one it lists (${Object.keys(route.responses).join(', ')})`);
  if (reply.kind !== 'json') throw new ContractError(what, route, status, `expected no JSON body here, the CLI asked for one`);
  const res = reply.schema.safeParse(body);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new ContractError(what, route, status, `${issue.path.length ? issue.path.map(String).join('.') : '(the body)'}: ${issue.message}`);
  }
  // Checked just now against the schema AnswerOf names.
  return res.data as AnswerOf<R>;
}

/** The request body the route takes: its JSON schema's input, text for a file, or nothing. */
type BodyOf<R extends Route> = R extends { body: infer B extends z.ZodType } ? z.input<B> : R extends { bodyTypes: string[] } ? string : Record<string, never>;
type CallOptions<R extends Route> = Omit<RequestOptions, 'body'> & { body?: BodyOf<R>; params?: Record<string, string> };

export class BerthClient {
  private readonly http: HttpClient;
  constructor(server: string, token: string | undefined, fetchImpl?: Fetch, caFile?: string) {
    this.http = new HttpClient(server, token, fetchImpl, caFile);
  }
  get server(): string {
    return this.http.server;
  }

  /** Calls a route; the answer, parsed with the contract's schema for the status it came with. */
  /** A streamed GET (NDJSON), e.g. a device's logs. */
  stream(what: string, route: Route, params: Record<string, string>, query: Record<string, string | undefined>, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    return this.http.stream(what, pathOf(route, params), query, signal);
  }

  async call<R extends Route>(what: string, route: R, opts: CallOptions<R> = {}): Promise<{ status: number; body: AnswerOf<R> }> {
    const { status, body } = await this.http.exchange(what, route.method.toUpperCase(), pathOf(route, opts.params), opts);
    return { status, body: parseAnswer(what, route, status, body) };
  }

  async createToken(body: { role: TokenInfo['role']; name: string; expiresInSeconds?: number }): Promise<CreatedToken> {
    return (await this.call('creating a token', operatorRoutes.createToken, { body: { role: body.role, name: body.name, expiresIn: body.expiresInSeconds } })).body;
  }
  async listTokens(): Promise<TokenInfo[]> {
    return (await this.call('listing tokens', operatorRoutes.listTokens)).body.tokens;
  }
  async revokeToken(id: string): Promise<TokenInfo> {
    return (await this.call(`revoking token ${id}`, operatorRoutes.revokeToken, { params: { id } })).body;
  }

  async rotateKey() {
    return (await this.call('rotating the signing key', operatorRoutes.rotateKey, {})).body;
  }

  async revokeKey(kid: string) {
    return (await this.call(`revoking signing key ${kid}`, operatorRoutes.revokeKey, { params: { kid } })).body;
  }

  /** One page of the audit log, newest first; `next` is the `before` of the older page (null: no more). */
  async audit(page: { since?: string; before?: string; limit?: number } = {}): Promise<{ entries: AuditEntry[]; next: string | null }> {
    const query = { since: page.since, before: page.before, limit: page.limit === undefined ? undefined : String(page.limit), order: 'newest' };
    const body = (await this.call('reading the audit log', operatorRoutes.audit, { query })).body;
    return { entries: body.entries.map(toAudit), next: body.next === undefined || body.next === null ? null : String(body.next) };
  }

  async importDevices(text: string, contentType: string): Promise<ImportResult> {
    return toImport((await this.call('importing manufacturing records', devicesRoutes.import, { body: text, contentType, timeoutMs: 300_000 })).body);
  }
  /** One page in serial order; `next` is the `after` of the following page (null: last page), `total` counts every match. */
  async listDevicesPage(q: { selector?: string; limit: number; after?: string }): Promise<{ devices: DeviceSummary[]; total: number; next: string | null }> {
    const body = (await this.call('listing devices', devicesRoutes.list, { query: { selector: q.selector, limit: String(q.limit), after: q.after } })).body;
    return { devices: body.devices.map(toDevice), total: body.total, next: body.next };
  }
  /**
   * Devices in serial order, page after page until `max` rows or the last page. `total` is the
   * server's count of every match, so a caller that stopped early can say how many it left out.
   */
  async listDevices(selector?: string, max = Infinity, after?: string): Promise<{ devices: DeviceSummary[]; total: number; next: string | null }> {
    const devices: DeviceSummary[] = [];
    let cursor = after;
    for (;;) {
      const page = await this.listDevicesPage({ selector, limit: Math.min(DEVICE_PAGE, max - devices.length), after: cursor });
      devices.push(...page.devices);
      if (page.next === null || devices.length >= max) return { devices, total: page.total, next: page.next };
      cursor = page.next;
    }
  }
  async twin(serial: string): Promise<Twin> {
    return toTwin((await this.call(`reading device ${serial}`, devicesRoutes.twin, { params: { serial } })).body);
  }
  async labelDevice(serial: string, edit: { set: Record<string, string>; remove: string[] }): Promise<{ serial: string; labels: Record<string, string>; changed: boolean }> {
    return (await this.call(`labelling device ${serial}`, devicesRoutes.labels, { params: { serial }, body: edit })).body;
  }
  async revokeDevice(serial: string): Promise<{ serial: string; status: string }> {
    return (await this.call(`revoking device ${serial}`, devicesRoutes.revoke, { params: { serial }, body: {} })).body;
  }

  /** Removes a revoked device and what is kept for it (refused while it is not revoked). */
  async removeDevice(serial: string): Promise<{ serial: string; removed: true }> {
    return (await this.call(`removing device ${serial}`, devicesRoutes.remove, { params: { serial } })).body;
  }
  /** Assigns NAME@VERSION to one device outside any campaign (audited on the server). */
  async assignDevice(serial: string, manifest: string) {
    return (await this.call(`assigning ${manifest} to device ${serial}`, devicesRoutes.assign, { params: { serial }, body: { manifest } })).body;
  }
  async rollbackDevice(serial: string) {
    return (await this.call(`rolling device ${serial} back`, devicesRoutes.rollback, { params: { serial }, body: {} })).body;
  }
  async deviceHistory(serial: string, limit?: number) {
    return (await this.call(`reading the report history of device ${serial}`, devicesRoutes.history, { params: { serial }, query: { limit: limit === undefined ? undefined : String(limit) } })).body.reports;
  }
  async listKeys() {
    return (await this.call('listing signing keys', operatorRoutes.listKeys)).body.keys;
  }
  /** What publishing would store and how it differs from the latest version; writes nothing. */
  async previewManifest(source: string, filename: string) {
    return (await this.call('checking the manifest', manifestRoutes.dryRun, { body: { source, filename }, timeoutMs: 120_000 })).body;
  }

  async publishManifest(source: string, filename: string): Promise<PublishResult> {
    const { status, body } = await this.call('publishing the manifest', manifestRoutes.publish, { body: { source, filename }, timeoutMs: 120_000 });
    return { ...toManifest(body), created: status === 201 };
  }
  async listManifests(): Promise<ManifestInfo[]> {
    return (await this.call('listing manifests', manifestRoutes.list)).body.manifests.map(toManifestInfo);
  }
  async manifest(name: string, version: string): Promise<ManifestDetail> {
    return toManifest((await this.call(`reading manifest ${name}@${version}`, manifestRoutes.show, { params: { name, version } })).body);
  }
  async diffManifests(name: string, from: string, to: string): Promise<ManifestDiff> {
    return toDiff((await this.call(`comparing ${name}@${from} and ${name}@${to}`, manifestRoutes.diff, { params: { name }, query: { from, to } })).body);
  }

  async createCampaign(body: CampaignCreate): Promise<Campaign> {
    return toCampaign((await this.call('creating the campaign', campaignRoutes.create, { body })).body);
  }
  async listCampaigns(): Promise<Campaign[]> {
    return (await this.call('listing campaigns', campaignRoutes.list)).body.campaigns.map(toCampaign);
  }
  async campaign(id: string, timeoutMs?: number): Promise<Campaign> {
    return toCampaign((await this.call(`reading campaign ${id}`, campaignRoutes.status, { params: { id }, timeoutMs })).body);
  }
  async campaignAction(id: string, action: CampaignAction): Promise<Campaign> {
    const doing = { start: 'starting', pause: 'pausing', resume: 'resuming', abort: 'aborting' }[action];
    return toCampaign((await this.call(`${doing} campaign ${id}`, campaignRoutes[action], { params: { id }, body: {} })).body);
  }

  async setPolicy(name: string, body: { selector: string; allow: string[] }) {
    return (await this.call(`setting policy ${name}`, policyRoutes.set, { params: { name }, body })).body;
  }
  async listPolicies() {
    return (await this.call('listing policies', policyRoutes.list)).body.policies;
  }
  async policy(name: string) {
    return (await this.call(`reading policy ${name}`, policyRoutes.show, { params: { name } })).body;
  }
  async removePolicy(name: string) {
    return (await this.call(`removing policy ${name}`, policyRoutes.remove, { params: { name } })).body;
  }
  async setVariables(body: { values: Record<string, string>; device?: string; selector?: string; fleet?: true }) {
    return (await this.call('setting variables', varsRoutes.set, { body })).body.set;
  }
  async listVariables(device?: string) {
    return (await this.call(device ? `reading the variables of device ${device}` : 'listing variables', varsRoutes.list, { query: { device } })).body;
  }
  async checkVariables(manifest: string, selector: string) {
    return (await this.call(`checking the variables of ${manifest}`, varsRoutes.check, { body: { manifest, selector } })).body;
  }
  async removeVariable(name: string, scope: { device?: string; selector?: string; fleet?: true }) {
    return (await this.call(`removing variable ${name}`, varsRoutes.remove, { params: { name }, query: { device: scope.device, selector: scope.selector, fleet: scope.fleet ? 'true' : undefined } })).body;
  }
  async setSecret(name: string, body: { scope: SecretScope; target?: string; value: string }) {
    return (await this.call(`setting secret ${name}`, secretRoutes.set, { params: { name }, body })).body;
  }
  async listSecrets() {
    return (await this.call('listing secrets', secretRoutes.list)).body.secrets;
  }
  async removeSecret(name: string, scope: { scope: SecretScope; target?: string }) {
    return (await this.call(`removing secret ${name}`, secretRoutes.remove, { params: { name }, query: scope })).body;
  }
  async checkRollout(manifest: string, selector: string) {
    return (await this.call(`checking the privileges of ${manifest}`, policyRoutes.check, { body: { manifest, selector } })).body;
  }
}

/**
 * A client of `server`; with `caFile`, over node:https trusting the fleet's CA besides the public
 * roots (fetch cannot take a CA without undici's own agent). Verification is never turned off.
 */
export async function connect(server: string, token: string | undefined, caFile?: string): Promise<BerthClient> {
  if (!caFile) return new BerthClient(server, token);
  let trust: HttpsTrust;
  try {
    trust = await loadTrust(caFile);
  } catch (err) {
    throw new CliError((err as Error).message, 'give the PEM file of the CA that signed the control plane\'s certificate', 2);
  }
  return new BerthClient(server, token, trustingFetch(trust), caFile);
}
