import { parseFlags, usageOf, type FlagSpec } from '../common/config.js';
import { createLogger } from '../common/log.js';

export { startEdgeDaemon, type EdgeDaemon, type EdgeDaemonOptions, type DaemonStatus } from './daemon.js';
export type { ImageFetcher, FetcherFactory, FetcherOptions, FetchProgress } from './images.js';

const FLAGS: Record<string, FlagSpec> = {
  'control-plane': { type: 'string', about: 'control plane base URL' },
  'state-dir': { type: 'string', about: 'state directory (credentials, journal, downloads)' },
  serial: { type: 'string', about: "this device's serial, as the manufacturer recorded it" },
  key: { type: 'string', about: "file with this device's Ed25519 private key (PKCS#8 PEM)" },
  'docker-host': { type: 'string', default: 'unix:///var/run/docker.sock', about: 'Docker engine (unix:///path or tcp://host:port)' },
  'trust-key': { type: 'string', about: 'file with the deployment-signing public key (PEM or raw), overriding the pinned JWKS' },
  'registry-proxy': { type: 'string', about: 'registry proxy URL, overriding the one given at enrollment' },
  allow: { type: 'string', about: "file with this gateway's privilege ceiling (KEY=VALUE[,VALUE…] per line); documents asking for more are refused" },
};

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv, FLAGS, 'DAEMON');
  } catch (err) {
    console.error(`berth edge-daemon: ${(err as Error).message}\n\n${usageOf('edge-daemon', FLAGS, 'DAEMON')}`);
    return 2;
  }
  if (parsed.help) {
    console.log(usageOf('edge-daemon', FLAGS, 'DAEMON'));
    return 0;
  }
  const f = parsed.flags as Record<string, string | undefined>;
  const missing = ['control-plane', 'state-dir', 'serial', 'key'].filter((k) => !f[k]);
  if (missing.length) {
    console.error(`berth edge-daemon: missing ${missing.map((m) => '--' + m).join(', ')}\n\n${usageOf('edge-daemon', FLAGS, 'DAEMON')}`);
    return 2;
  }
  const log = createLogger('edge-daemon');
  const { startEdgeDaemon } = await import('./daemon.js');
  const daemon = await startEdgeDaemon({
    controlPlane: f['control-plane']!,
    stateDir: f['state-dir']!,
    serial: f.serial!,
    key: f.key!,
    dockerHost: f['docker-host'],
    trustKey: f['trust-key'],
    registryProxy: f['registry-proxy'],
    allow: f.allow,
    log,
  });
  log.info({ deviceId: daemon.deviceId }, 'edge daemon running');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await daemon.close();
  return 0;
}
