import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { DeviceReport } from '../../protocol/device.js';
import { call, csvOf, enroll, jwtPayload, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * Test parts for the console and webhooks: simulated gateways (real keys, real enrollment, real
 * desired-state fetches and reports over HTTP) and a webhook receiver on loopback.
 */

export class SimGateway {
  token = '';
  deviceId = '';
  private reportSeq = 0;
  readonly key: TestDevice;
  constructor(serial: string) {
    this.key = newDevice(serial);
  }
  get serial(): string {
    return this.key.serial;
  }
  async enroll(base: string): Promise<void> {
    const out = await enroll(base, this.key);
    this.token = out.token;
    this.deviceId = out.deviceId;
  }
  async desired(base: string): Promise<{ release: string; sequence: number; images: Record<string, string> } | null> {
    const r = await call(base, 'GET', '/v1/device/desired', { token: this.token });
    if (r.status === 204) return null;
    expect(r.status).toBe(200);
    const doc = jwtPayload(r.body.document as string);
    const images = Object.fromEntries(Object.entries(doc.spec.services as Record<string, { image: string }>).map(([name, s]) => [name, s.image]));
    return { release: `${doc.manifest.name}@${doc.manifest.version}`, sequence: doc.sequence as number, images };
  }
  async report(base: string, fields: Partial<DeviceReport> & Pick<DeviceReport, 'phase'>): Promise<void> {
    const body: DeviceReport = { sequence: ++this.reportSeq, desiredSequence: null, running: null, bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString(), ...fields };
    const r = await call(base, 'POST', '/v1/device/report', { token: this.token, json: body });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
  }
  /** Reports progress towards what is desired (phase downloading, `done` of `total` bytes). */
  async downloading(base: string, done: number, total: number): Promise<void> {
    const d = await this.desired(base);
    await this.report(base, { phase: 'downloading', desiredSequence: d?.sequence ?? null, bytes: { done, total } });
  }
  /** Runs whatever is desired, healthy; null when nothing is. */
  async runDesired(base: string): Promise<string | null> {
    const d = await this.desired(base);
    if (!d) return null;
    const services = Object.fromEntries(Object.entries(d.images).map(([name, image]) => [name, { image, status: 'running' as const, health: 'healthy' as const, restarts: 0 }]));
    await this.report(base, { phase: 'running', desiredSequence: d.sequence, running: d.release, services });
    return d.release;
  }
  /** Runs what is desired, healthy; a gateway with nothing to run fails the test here. */
  async mustRun(base: string): Promise<string> {
    const release = await this.runDesired(base);
    if (release === null) throw new Error(`${this.serial} has nothing to run`);
    return release;
  }
  /**
   * Answers the log requests waiting for this gateway, as the daemon's logs/shipper.ts does over the
   * same routes: claims them and uploads `lines` (service web) to each. Returns how many it answered.
   */
  async serveLogs(base: string, lines: string[]): Promise<number> {
    const claimed = await call(base, 'POST', '/v1/device/logs/claim', { token: this.token, json: {} });
    expect(claimed.status).toBe(200);
    for (const r of claimed.body.requests as Array<{ id: string }>) {
      const body = lines.map((line) => JSON.stringify({ service: 'web', stream: 'stdout', line })).join('\n') + '\n';
      const up = await call(base, 'POST', `/v1/device/logs/${r.id}`, { token: this.token, text: body, type: 'application/x-ndjson' });
      expect(up.status, JSON.stringify(up.body)).toBe(200);
    }
    return claimed.body.requests.length;
  }

  async rollBack(base: string, running: string, error: string): Promise<void> {
    const d = await this.desired(base);
    await this.report(base, { phase: 'rolled-back', desiredSequence: d?.sequence ?? null, running, error });
  }
}

/** Imports (with labels) and enrolls each gateway. */
export async function enrollFleet(base: string, admin: string, gateways: SimGateway[], labels: (g: SimGateway) => string): Promise<void> {
  const byKey = new Map(gateways.map((g) => [g.key, g]));
  const r = await call(base, 'POST', '/v1/devices/import', { token: admin, text: csvOf(gateways.map((g) => g.key), (k) => labels(byKey.get(k) as SimGateway)), type: 'text/csv' });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  for (const g of gateways) await g.enroll(base);
}

export async function publish(base: string, admin: string, name: string, version: string, image: string): Promise<void> {
  const r = await call(base, 'POST', '/v1/manifests', { token: admin, text: `name: ${name}\nversion: ${version}\nservices:\n  web:\n    image: ${image}\n`, type: 'application/yaml' });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

export interface Received {
  body: string;
  headers: IncomingHttpHeaders;
  event: { id: string; type: string; subject: string; data: Record<string, unknown> };
}

/** A webhook receiver on loopback: records every POST; `failNext` answers 500 that many times first. */
export class Receiver {
  readonly received: Received[] = [];
  failNext = 0;
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.failNext > 0) {
          this.failNext--;
          res.writeHead(500).end('not now');
          return;
        }
        const body = Buffer.concat(chunks).toString('utf8');
        this.received.push({ body, headers: req.headers, event: JSON.parse(body) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this;
  }

  /** Unique by event id (at-least-once delivery: a redelivery has the same id). */
  unique(): Received[] {
    const seen = new Map<string, Received>();
    for (const r of this.received) if (!seen.has(r.event.id)) seen.set(r.event.id, r);
    return [...seen.values()];
  }

  types(): string[] {
    return this.unique().map((r) => r.event.type);
  }

  async until(what: string, predicate: (r: Receiver) => boolean, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() > deadline) throw new Error(`webhook receiver: timed out waiting for ${what}; got ${JSON.stringify(this.types())}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
