import { createRequire, Module } from 'node:module';

/**
 * dockerode `require`s, at its top level, two large dependency trees a gateway daemon never uses:
 * `@grpc/grpc-js` + `@grpc/proto-loader` + protobufjs (through `dockerode/lib/session.js`, only for
 * BuildKit sessions of `docker.buildImage`) and `ssh2` (through `docker-modem/lib/ssh.js`, only for
 * `ssh://` engines). Together about 150 CommonJS modules and ~11 MB of resident memory in a process
 * whose target is 50 MB.
 *
 * Both files export one function. Before dockerode is first loaded, each gets a stand-in in Node's
 * CommonJS cache: a function that, on its first call, drops itself from the cache and loads the real
 * module, then forwards every call to it. Behaviour is unchanged (an `ssh://` host or a BuildKit build
 * still works, just loads its dependencies when it first needs them); idle memory is not spent on them.
 *
 * Fail-safe: a path that does not resolve (another dockerode layout), a module that is already
 * loaded, or a cache that is not there leaves everything as it is, and dockerode loads in full.
 */

/** Which files to defer, each resolved from the file that requires it. */
const DEFERRED: { from: string; request: string }[] = [
  { from: 'dockerode', request: './session.js' },
  { from: 'docker-modem', request: './ssh.js' },
];

type Loader = { resolve(id: string): string; (id: string): unknown; cache: Record<string, unknown> };

/** The stand-in: a CommonJS module whose export loads the real one on first call. */
function lazyFunctionModule(load: Loader, path: string): Module {
  const stub = new Module(path);
  stub.filename = path;
  stub.loaded = true;
  let real: ((...args: unknown[]) => unknown) | undefined;
  stub.exports = function deferred(this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      if (load.cache[path] === stub) delete load.cache[path];
      const loaded = load(path);
      if (typeof loaded !== 'function') throw new Error(`${path} no longer exports a function; lean-docker must not defer it`);
      real = loaded as (...args: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  return stub;
}

/**
 * Installs the stand-ins; returns the paths it deferred (empty when it changed nothing). Call it
 * before the first `import('dockerode')`; calling it again, or after dockerode is loaded, is a no-op.
 */
export function deferUnusedDockerDependencies(): string[] {
  const deferred: string[] = [];
  try {
    const root = createRequire(import.meta.url) as unknown as Loader;
    // docker-modem is dockerode's dependency: resolve it the way dockerode does.
    const dockerode = root.resolve('dockerode');
    const modem = (createRequire(dockerode) as unknown as Loader).resolve('docker-modem');
    const bases: Record<string, string> = { dockerode, 'docker-modem': modem };
    for (const { from, request } of DEFERRED) {
      const load = createRequire(bases[from]) as unknown as Loader;
      const path = load.resolve(request);
      if (load.cache[path]) continue; // already loaded (or already deferred): leave it
      load.cache[path] = lazyFunctionModule(load, path);
      deferred.push(path);
    }
  } catch {
    // Not resolvable here: dockerode loads in full, which is correct, only larger.
  }
  return deferred;
}
