import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineClient, repositoryAndTag } from '../../edge-daemon/engine/client.js';
import { EngineApiError, engineEndpoint, queryString } from '../../edge-daemon/engine/http.js';
import { LogFrames } from '../../edge-daemon/logs/frames.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';

/**
 * The daemon's own Engine API client (edge-daemon/engine/) against the rig's real dockerd and
 * registry: the calls the daemon makes, and what it says when the engine refuses or is not there.
 */

const rig = rigFromEnv();
const engine = new EngineClient(rig.dockerHost);
const run = randomBytes(4).toString('hex');
const name = `berth-engine-client-${run}`;
const cleanups: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('engine client: pure parts', () => {
  it('splits a pull reference the way the engine takes it (a registry port is not a tag)', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(repositoryAndTag(`127.0.0.1:5000/dev/app@${digest}`)).toEqual({ fromImage: '127.0.0.1:5000/dev/app', tag: digest });
    expect(repositoryAndTag('127.0.0.1:5000/dev/app:2')).toEqual({ fromImage: '127.0.0.1:5000/dev/app', tag: '2' });
    expect(repositoryAndTag('127.0.0.1:5000/dev/app')).toEqual({ fromImage: '127.0.0.1:5000/dev/app', tag: 'latest' });
  });

  it('encodes filters as JSON and leaves out what is undefined', () => {
    expect(queryString({ all: true, t: undefined, filters: { label: ['a=b'] } })).toBe('?all=true&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D');
    expect(queryString({})).toBe('');
  });

  it('refuses a docker host it cannot reach over plain HTTP, naming it', () => {
    expect(engineEndpoint('unix:///var/run/docker.sock')).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(engineEndpoint('tcp://10.0.0.2:2376')).toEqual({ host: '10.0.0.2', port: 2376 });
    expect(() => engineEndpoint('ssh://gw')).toThrow(/--docker-host "ssh:\/\/gw": expected unix/);
  });
});

describe('engine client against the rig engine', () => {
  it('pulls, creates, starts, logs, stops and removes a container, as the daemon does', async () => {
    const img = await forgeImage(rig.registry, `berth-test/engine-client-${run}`, '1', { layers: [busyboxLayer()], config: { Cmd: ['sh', '-c', 'echo out; echo err >&2; sleep 60'] } });
    const ref = img.reference;
    const pull = await engine.pull(ref);
    let progress = '';
    for await (const chunk of pull) progress += String(chunk);
    expect(progress).not.toMatch(/"error"/);
    cleanups.push(() => engine.getImage(img.configDigest).remove({ force: true }));
    expect((await engine.getImage(img.configDigest).inspect()).RootFS?.Layers).toEqual(img.layers.map((l) => l.diffId));

    await engine.createContainer({ name, Image: img.configDigest, Labels: { 'berth.test': run } });
    cleanups.push(() => engine.getContainer(name).remove({ force: true }));
    await engine.getContainer(name).start();
    // Starting it again: the engine says 304, which replayed steps accept.
    await expect(engine.getContainer(name).start()).rejects.toMatchObject({ statusCode: 304 });
    const listed = await engine.listContainers({ all: true, filters: { label: [`berth.test=${run}`] } });
    expect(listed.map((c) => c.Names?.[0])).toEqual([`/${name}`]);

    let lines: string[] = [];
    for (let i = 0; i < 50 && lines.length < 2; i++) {
      const frames = new LogFrames((await engine.getContainer(name).inspect()).Config.Tty);
      const raw = await engine.getContainer(name).logs({ stdout: true, stderr: true, tail: 10 });
      lines = [...frames.push(raw), ...frames.flush()].map((l) => `${l.stream}:${l.line}`).sort();
      if (lines.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(lines).toEqual(['stderr:err', 'stdout:out']);

    await engine.getContainer(name).stop({ t: 0 });
    expect((await engine.getContainer(name).inspect()).State.Running).toBe(false);
    await engine.getContainer(name).remove({ force: true });
    await expect(engine.getContainer(name).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('names the call, the status and the engine\'s message when the engine refuses', async () => {
    const err = await engine.getImage(`berth-test/absent-${run}:1`).inspect().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(EngineApiError);
    expect(err).toMatchObject({ statusCode: 404, method: 'GET' });
    expect((err as Error).message).toMatch(new RegExp(`^Docker Engine API GET /images/berth-test%2Fabsent-${run}%3A1/json answered 404: .*No such image`, 'i'));
  });

  it('keeps the socket error code when the engine is not there (the daemon reports it as unreachable)', async () => {
    const gone = new EngineClient(`unix:///tmp/berth-no-engine-${run}.sock`);
    await expect(gone.listContainers()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
