/**
 * Runs one Berth service in this process with options read as JSON from stdin, until SIGTERM:
 *   node dist/test/bench/serve.js registry-proxy|edge-daemon  < options.json
 * The benches use it when `berth <service>` cannot parse its flags on this Node (common/config.ts
 * passes `multiple: undefined` to node:util parseArgs, which Node 20 refuses). Same start function
 * and same modules as the CLI; only the flag parsing is skipped. Only the one component is loaded.
 */
import { createLogger } from '../../common/log.js';
import { readJob } from './proc.js';

const component = process.argv[2];
const opts = await readJob<Record<string, unknown>>();
let close: () => Promise<void>;
if (component === 'registry-proxy') {
  const { startRegistryProxy } = await import('../../registry-proxy/index.js');
  const o = opts as { listen: string; cacheDir: string; upstreams: { alias: string; url: string }[]; anonymous: boolean };
  const proxy = await startRegistryProxy({ ...o, log: createLogger('registry-proxy') });
  close = () => proxy.close();
} else if (component === 'edge-daemon') {
  const { startEdgeDaemon } = await import('../../edge-daemon/index.js');
  const o = opts as { controlPlane: string; stateDir: string; serial: string; key: string; dockerHost: string; registryProxy?: string };
  const daemon = await startEdgeDaemon({ ...o, log: createLogger('edge-daemon') });
  close = () => daemon.close();
} else {
  console.error(`serve: unknown component ${JSON.stringify(component)} (registry-proxy or edge-daemon)`);
  process.exit(2);
}
await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
await close();
