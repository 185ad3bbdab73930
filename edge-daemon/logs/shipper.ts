import { request as httpRequest, type ClientRequest } from 'node:http';
import type { EngineClient } from '../engine/client.js';
import type { ContainerSummary } from '../engine/types.js';
import type { Logger } from '../gateway-log.js';
import { LOG_BYTES_CAP, LOG_REQUESTS_PER_DEVICE, type LogRequest } from '../../protocol/device-logs.js';
import type { ControlClient } from '../control.js';
import { LABEL } from '../reconcile/spec.js';
import { LogFrames } from './frames.js';

/**
 * Ships container logs on demand (issue 15). The long poll says requests are waiting; the shipper
 * claims them and streams each one's lines up to the control plane as NDJSON in one request body.
 * It stops when the logs end (not following), when the control plane answers or closes the upload
 * (the operator left, the cap was reached), or when the daemon stops. Nothing is kept on disk.
 */
export class LogShipper {
  private readonly running = new Map<string, () => void>();
  private claiming = false;

  constructor(private readonly docker: EngineClient, private readonly client: () => ControlClient, private readonly deviceId: () => string, private readonly log: Logger) {}

  /** Claims what waits; called when a poll answer says requests are waiting. Never throws. */
  poll(): void {
    if (this.claiming) return;
    this.claiming = true;
    this.client()
      .claimLogRequests(AbortSignal.timeout(15_000))
      .then((requests) => {
        for (const r of requests) {
          if (this.running.has(r.id) || this.running.size >= LOG_REQUESTS_PER_DEVICE) continue;
          this.ship(r).catch((err: unknown) => this.log.warn({ err: (err as Error).message, request: r.id }, 'log request failed'));
        }
      })
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'log requests not claimed'))
      .finally(() => (this.claiming = false));
  }

  stop(): void {
    for (const stop of [...this.running.values()]) stop();
  }

  private async containers(service: string | null): Promise<Array<{ id: string; service: string; tty: boolean }>> {
    const labels = [`${LABEL.device}=${this.deviceId()}`, ...(service ? [`${LABEL.service}=${service}`] : [])];
    const list = await this.docker.listContainers({ all: true, filters: { label: labels } });
    // The newest container of each service: the running release's (older ones are kept for a rollback).
    const newest = new Map<string, ContainerSummary>();
    for (const c of list) {
      const name = c.Labels[LABEL.service];
      if (name && (!newest.has(name) || (newest.get(name) as ContainerSummary).Created < c.Created)) newest.set(name, c);
    }
    const out = [];
    for (const [name, c] of newest) out.push({ id: c.Id, service: name, tty: (await this.docker.getContainer(c.Id).inspect()).Config.Tty });
    return out;
  }

  private async ship(r: LogRequest): Promise<void> {
    const target = this.client().logUploadTarget(r.id);
    // node:https only when the control plane is reached over TLS (the daemon's footprint).
    const send0 = target.url.startsWith('https:') ? (await import('node:https')).request : httpRequest;
    const upload: ClientRequest = send0(target.url, { method: 'POST', ...(target.agent && target.url.startsWith('https:') ? { agent: target.agent } : {}), headers: { 'content-type': 'application/x-ndjson', ...(target.authorization ? { authorization: target.authorization } : {}) } });
    const sources: NodeJS.ReadableStream[] = [];
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      this.running.delete(r.id);
      for (const s of sources) (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      if (!upload.writableEnded) upload.end();
    };
    this.running.set(r.id, stop);
    // An answer or a closed connection while sending means: stop (the operator left, or the cap).
    upload.on('response', (res) => {
      res.resume();
      stop();
    });
    upload.on('error', stop);
    let bytes = 0;
    const send = (service: string, stream: string, line: string): void => {
      if (stopped) return;
      const text = JSON.stringify({ service, stream, line }) + '\n';
      bytes += text.length;
      if (bytes > LOG_BYTES_CAP) return stop();
      upload.write(text);
    };
    try {
      const targets = await this.containers(r.service);
      if (!targets.length) send(r.service ?? 'berth', 'stderr', r.service ? `no container of service ${r.service} on this gateway` : 'no container runs on this gateway');
      const base = { stdout: true, stderr: true, ...(r.tail !== null ? { tail: r.tail } : {}), ...(r.since !== null ? { since: r.since } : {}) };
      const done = targets.map(async (t) => {
        const c = this.docker.getContainer(t.id);
        const frames = new LogFrames(t.tty);
        if (!r.follow) {
          const buf = await c.logs(base);
          for (const l of [...frames.push(buf), ...frames.flush()]) send(t.service, l.stream, l.line);
          return;
        }
        const stream = await c.followLogs(base);
        sources.push(stream);
        if (stopped) return stop();
        await new Promise<void>((resolve) => {
          stream.on('data', (chunk: Buffer) => {
            for (const l of frames.push(chunk)) send(t.service, l.stream, l.line);
          });
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', resolve);
        });
      });
      await Promise.all(done);
    } finally {
      // Not following, or every followed stream ended: the upload ends, the control plane answers.
      if (!upload.writableEnded) upload.end();
      if (!r.follow) this.running.delete(r.id);
    }
  }
}
