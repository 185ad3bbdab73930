/**
 * `berth control-plane`: flags → options, and which process does what. Kept apart from index.ts
 * (which loads the whole control plane) so that the primary of `--workers N`, which serves nothing,
 * loads only this and cluster.ts: under load, loading the control plane's code takes seconds.
 */
import type { FlagSpec } from '../common/config.js';
import { parseListenList } from '../common/listen.js';
import { tlsFilesOf } from '../common/serve.js';
import { runService, type ServiceSpec } from '../common/service.js';
import { parseDuration } from '../common/grammar.js';
import { isClusterWorker, isClusterWriter, startPrimary, startWorker, startWriterWorker, workerIo } from './cluster.js';
import { workersOf } from './cluster-size.js';
import type { ControlPlaneOptions } from './index.js';

const FLAGS: Record<string, FlagSpec> = {
  listen: { type: 'string', default: '127.0.0.1:7600', about: 'address to listen on (HOST:PORT; several comma-separated, e.g. 127.0.0.1:7600,[::1]:7600)' },
  'tls-cert': { type: 'string', about: 'serve HTTPS: certificate PEM file, with its chain (SIGHUP reloads it)' },
  'tls-key': { type: 'string', about: 'serve HTTPS: private key PEM file, mode 0600 or the server refuses to start' },
  'device-client-ca': { type: 'string', about: 'require on device routes a client certificate from this CA (PEM) naming the serial in its CN or a SAN (needs --tls-*)' },
  'ca-file': { type: 'string', about: "PEM file of the fleet's CA, trusted for an https: --registry-proxy (certificates are always verified)" },
  db: { type: 'string', env: 'BERTH_DB_URL', default: 'file:./data/berth.db', about: 'database: file: URL (embedded, WAL) or libsql:// / https:// server (token in BERTH_DB_AUTH_TOKEN)' },
  'registry-proxy': { type: 'string', env: 'BERTH_REGISTRY_PROXY', about: 'registry proxy base URL (tag resolution, handed to devices)' },
  'data-dir': { type: 'string', env: 'BERTH_DATA_DIR', about: 'where admin.token is written (default: the database file directory, else ./data)' },
  'public-url': { type: 'string', about: 'URL clients use to reach this control plane' },
  'offline-after': { type: 'string', default: '2m', about: 'a device not heard from for this long is shown offline' },
  'document-ttl': { type: 'string', default: '24h', about: 'lifetime of a signed deployment document' },
  workers: { type: 'string', about: 'processes serving the one port, sharing the database (default: the number of cores; 1 = one process, no cluster)' },
};

/** A bad flag exits 2 (common/service.ts). */
export const service: ServiceSpec<ControlPlaneOptions & { workers: number }> = {
  name: 'control-plane',
  flags: FLAGS,
  envPrefix: 'CP',
  helpNotes: 'Secrets only from the environment: BERTH_ADMIN_TOKEN (preset admin token), BERTH_DB_AUTH_TOKEN, BERTH_SIGNING_KEY_SECRET.',
  configure(f) {
    const flag = (name: string) => f[name] as string | undefined;
    parseListenList(flag('listen') as string);
    return {
      listen: flag('listen'),
      tls: tlsFilesOf(flag('tls-cert'), flag('tls-key'), flag('device-client-ca')),
      caFile: flag('ca-file'),
      db: flag('db') as string,
      dbAuthToken: process.env.BERTH_DB_AUTH_TOKEN || undefined,
      registryProxy: flag('registry-proxy') ?? null,
      dataDir: flag('data-dir'),
      publicUrl: flag('public-url') ?? null,
      adminToken: process.env.BERTH_ADMIN_TOKEN || undefined,
      signingKeySecret: process.env.BERTH_SIGNING_KEY_SECRET || undefined,
      config: { offlineAfterMs: parseDuration(flag('offline-after') as string, '--offline-after'), documentTtlSec: Math.round(parseDuration(flag('document-ttl') as string, '--document-ttl') / 1000) },
      workers: workersOf(flag('workers'), flag('db') as string),
    };
  },
  async start({ workers, ...options }, log) {
    if (workers > 1 && !isClusterWorker()) return startPrimary(options, workers, log);
    if (isClusterWriter()) {
      const { startBatchWriter } = await import('./cluster-writer.js');
      return startWriterWorker(options, log, startBatchWriter);
    }
    const { startControlPlane } = await import('./index.js');
    if (isClusterWorker()) return startWorker(options, workers, log, startControlPlane);
    return startControlPlane({ ...options, log });
  },
};

export async function main(argv: string[]): Promise<number> {
  if (!isClusterWorker()) return runService(argv, service);
  // A worker stops when its primary says so (cluster.ts), and its process ends with it.
  process.exit(await runService(argv, service, workerIo()));
}
