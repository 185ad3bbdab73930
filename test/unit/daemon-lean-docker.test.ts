import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { deferUnusedDockerDependencies } from '../../edge-daemon/lean-docker.js';

const here = createRequire(import.meta.url);
const loaded = (part: string) => Object.keys(here.cache).filter((p) => p.includes(`/node_modules/${part}/`));

describe('lean dockerode (deferred BuildKit and ssh dependencies)', () => {
  it('loads dockerode without gRPC or ssh2, and loads them on first use', async () => {
    // Vitest runs each test file in its own process; nothing here has loaded dockerode yet.
    expect(loaded('dockerode')).toEqual([]);
    const deferred = deferUnusedDockerDependencies();
    expect(deferred.map((p) => p.split('/node_modules/')[1]).sort()).toEqual(['docker-modem/lib/ssh.js', 'dockerode/lib/session.js']);
    expect(deferUnusedDockerDependencies()).toEqual([]);

    const { default: Docker } = await import('dockerode');
    const docker = new Docker({ socketPath: '/nonexistent/docker.sock' });
    expect(typeof docker.listContainers).toBe('function');
    expect(loaded('dockerode').length).toBeGreaterThan(5);
    expect(loaded('@grpc/grpc-js')).toEqual([]);
    expect(loaded('ssh2')).toEqual([]);

    // The stand-in forwards to the real module: an ssh agent is built (no connection is made yet).
    const sshPath = deferred.find((p) => p.endsWith('ssh.js'))!;
    const ssh = here(sshPath) as (opt: Record<string, unknown>) => { createConnection: unknown };
    const agent = ssh({ host: '127.0.0.1', port: 1, username: 'nobody' });
    expect(typeof agent.createConnection).toBe('function');
    expect(loaded('ssh2').length).toBeGreaterThan(0);
    expect(here.cache[sshPath]?.exports).not.toBe(ssh);
  });
});
