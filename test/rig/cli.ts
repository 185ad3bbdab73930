import { rigDir, rigFromEnv, startRig, stopRig } from './index.js';

/**
 * `node dist/test/rig/cli.js up|down|status`: keep a rig running between local test runs (or for
 * the demo). `up` leaves no lease behind, so the next vitest run that ends as the rig's last user
 * stops it unless BERTH_RIG_KEEP=1.
 */
export async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  if (command === 'up') {
    const rig = await startRig();
    console.log(JSON.stringify({ ...rig }, null, 2));
    return 0;
  }
  if (command === 'down') {
    const { stopped } = await stopRig({ ...rigFromEnv(), dir: rigDir() });
    console.log(stopped ? 'rig stopped' : 'rig still in use by a running test run; left running');
    return 0;
  }
  if (command === 'status') {
    console.log(JSON.stringify(rigFromEnv(), null, 2));
    return 0;
  }
  console.error('usage: node dist/test/rig/cli.js up|down|status');
  return 2;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
