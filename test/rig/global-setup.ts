import type { TestProject } from 'vitest/node';
import { resolve } from 'node:path';
import { buildIfStale } from './build.js';
import { rigEnv, startRig, stopRig } from './index.js';

/**
 * Starts the shared rig once per vitest run of the integration project. Worker processes get its
 * address through environment variables (inherited at fork);
 * `rigFromEnv()` reads them, or rig.json as a fallback.
 * BERTH_RIG_KEEP=1 leaves dockerd and the registry running after the run for fast local iteration;
 * otherwise the last run using the rig stops it and removes its containers and data.
 * It also compiles dist/ once when it is stale (see build.ts), for the tests that run the built CLI.
 */
export default async function setup(_project: TestProject): Promise<() => Promise<void>> {
  buildIfStale(resolve(import.meta.dirname, '../..'));
  const rig = await startRig();
  Object.assign(process.env, rigEnv(rig));
  console.log(`[rig] ${rig.startedHere ? 'started' : 'reusing'} dockerd ${rig.dockerHost}, registry ${rig.registryUrl} (dir ${rig.dir})`);
  return async () => {
    const { stopped } = await stopRig(rig, { keep: process.env.BERTH_RIG_KEEP === '1' });
    console.log(`[rig] ${stopped ? 'stopped' : 'left running'} (${rig.dir})`);
  };
}
