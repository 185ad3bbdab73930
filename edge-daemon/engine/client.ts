import type { IncomingMessage } from 'node:http';
import { parseImageRef } from '../../manifests/image-ref.js';
import { EngineHttp } from './http.js';
import type { ContainerInspect, ContainerSummary, Filters, ImageInspect, ImageSummary, Labels, LogOptions, NetworkInspect, NetworkSummary, VolumeList } from './types.js';

/**
 * The daemon's Docker engine client: exactly the Engine API calls it makes, named as dockerode
 * named them so the reconcile and download code reads the same. Every failure is an
 * `EngineApiError` (method, path, status, the engine's message) or a socket error with its `code`.
 */

const enc = encodeURIComponent;

/** `repo[:tag]` or `repo@digest` split as the engine's pull takes it (manifests/image-ref.ts parses it). */
export function repositoryAndTag(ref: string): { fromImage: string; tag: string } {
  const r = parseImageRef(ref);
  // Without a tag the engine would pull every tag of the repository: parseImageRef says latest.
  return { fromImage: `${r.registry}/${r.repository}`, tag: r.digest ?? r.tag ?? 'latest' };
}

export class EngineContainer {
  constructor(
    private readonly http: EngineHttp,
    readonly id: string,
  ) {}

  inspect(): Promise<ContainerInspect> {
    return this.http.json({ method: 'GET', path: `/containers/${enc(this.id)}/json` });
  }

  /** 304 (already started) is an EngineApiError like any other status; callers that replay steps accept it. */
  async start(): Promise<void> {
    await this.http.json({ method: 'POST', path: `/containers/${enc(this.id)}/start` });
  }

  /** `t`: seconds the engine waits after SIGTERM before it kills. */
  async stop(opts: { t?: number } = {}): Promise<void> {
    await this.http.json({ method: 'POST', path: `/containers/${enc(this.id)}/stop`, query: { t: opts.t } });
  }

  async remove(opts: { force?: boolean } = {}): Promise<void> {
    await this.http.json({ method: 'DELETE', path: `/containers/${enc(this.id)}`, query: { force: opts.force } });
  }

  /** The logs so far, raw: multiplexed frames for a container without a TTY (logs/frames.ts reads both). */
  logs(opts: LogOptions): Promise<Buffer> {
    return this.http.bytes({ method: 'GET', path: `/containers/${enc(this.id)}/logs`, query: { ...opts, follow: false } });
  }

  /** The logs as they come, until the container stops or the stream is destroyed. */
  followLogs(opts: LogOptions): Promise<IncomingMessage> {
    return this.http.open({ method: 'GET', path: `/containers/${enc(this.id)}/logs`, query: { ...opts, follow: true } });
  }
}

export class EngineImage {
  constructor(
    private readonly http: EngineHttp,
    readonly name: string,
  ) {}

  inspect(): Promise<ImageInspect> {
    return this.http.json({ method: 'GET', path: `/images/${enc(this.name)}/json` });
  }

  async tag(opts: { repo: string; tag: string }): Promise<void> {
    await this.http.json({ method: 'POST', path: `/images/${enc(this.name)}/tag`, query: opts });
  }

  async remove(opts: { noprune?: boolean; force?: boolean } = {}): Promise<void> {
    await this.http.json({ method: 'DELETE', path: `/images/${enc(this.name)}`, query: opts });
  }

  /** `docker save` of this image: a tar stream. */
  get(): Promise<IncomingMessage> {
    return this.http.open({ method: 'GET', path: `/images/${enc(this.name)}/get` });
  }
}

export class EngineNetwork {
  constructor(
    private readonly http: EngineHttp,
    readonly id: string,
  ) {}

  inspect(): Promise<NetworkInspect> {
    return this.http.json({ method: 'GET', path: `/networks/${enc(this.id)}` });
  }

  async connect(body: { Container: string; EndpointConfig?: { Aliases?: string[] } }): Promise<void> {
    await this.http.json({ method: 'POST', path: `/networks/${enc(this.id)}/connect`, body });
  }

  async remove(): Promise<void> {
    await this.http.json({ method: 'DELETE', path: `/networks/${enc(this.id)}` });
  }
}

export class EngineClient {
  private readonly http: EngineHttp;

  /** `host`: `unix:///path/docker.sock` or `tcp://host:port`. */
  constructor(readonly host: string) {
    this.http = new EngineHttp(host);
  }

  getContainer(id: string): EngineContainer {
    return new EngineContainer(this.http, id);
  }

  getImage(name: string): EngineImage {
    return new EngineImage(this.http, name);
  }

  getNetwork(id: string): EngineNetwork {
    return new EngineNetwork(this.http, id);
  }

  listContainers(opts: { all?: boolean; filters?: Filters } = {}): Promise<ContainerSummary[]> {
    return this.http.json({ method: 'GET', path: '/containers/json', query: opts });
  }

  listImages(opts: { digests?: boolean } = {}): Promise<ImageSummary[]> {
    return this.http.json({ method: 'GET', path: '/images/json', query: opts });
  }

  listVolumes(opts: { filters?: Filters } = {}): Promise<VolumeList> {
    return this.http.json({ method: 'GET', path: '/volumes', query: opts });
  }

  listNetworks(opts: { filters?: Filters } = {}): Promise<NetworkSummary[]> {
    return this.http.json({ method: 'GET', path: '/networks', query: opts });
  }

  /** The body is the API's container config; `name` goes in the query. */
  async createContainer<T extends { name?: string }>(opts: T): Promise<{ Id: string }> {
    const { name, ...body } = opts;
    return this.http.json({ method: 'POST', path: '/containers/create', query: { name }, body });
  }

  /** Creating a volume that exists answers it unchanged. */
  async createVolume(body: { Name: string; Labels?: Labels }): Promise<void> {
    await this.http.json({ method: 'POST', path: '/volumes/create', body });
  }

  async createNetwork(body: { Name: string; Driver?: string; Internal?: boolean; CheckDuplicate?: boolean; Labels?: Labels }): Promise<void> {
    await this.http.json({ method: 'POST', path: '/networks/create', body });
  }

  /** The pull's progress stream (newline-delimited JSON; a failed pull is an error line in a 200 answer). */
  pull(ref: string): Promise<IncomingMessage> {
    return this.http.open({ method: 'POST', path: '/images/create', query: repositoryAndTag(ref) });
  }

  info(): Promise<{ DockerRootDir?: string }> {
    return this.http.json({ method: 'GET', path: '/info' });
  }
}
