import type { FlagSpec } from '../common/config.js';
import { runService, UsageError, type ServiceSpec } from '../common/service.js';
import type { EdgeDaemonOptions } from './daemon.js';

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
  'ca-file': { type: 'string', about: "PEM file of the fleet's CA, trusted besides the public roots for https: control plane and proxy (certificates are always verified)" },
  'tls-client-cert': { type: 'string', about: "this device's client certificate (PEM), for a control plane with --device-client-ca" },
  'tls-client-key': { type: 'string', about: 'the key of --tls-client-cert (PEM, mode 0600)' },
  allow: { type: 'string', about: "file with this gateway's privilege ceiling (KEY=VALUE[,VALUE…] per line); documents asking for more are refused" },
  'secrets-dir': { type: 'string', default: '/run/berth', about: 'tmpfs where decrypted secret files live (refused unless tmpfs)' },
  'secrets-dir-any-fs': { type: 'boolean', about: 'development only: accept a --secrets-dir that is not tmpfs (secret files then reach a disk)' },
};

/** `berth edge-daemon`: flags → options; a bad or missing flag exits 2 (common/service.ts). */
export const service: ServiceSpec<EdgeDaemonOptions> = {
  name: 'edge-daemon',
  flags: FLAGS,
  envPrefix: 'DAEMON',
  configure(flags) {
    const f = flags as Record<string, string | undefined>;
    const missing = ['control-plane', 'state-dir', 'serial', 'key'].filter((k) => !f[k]);
    if (missing.length) throw new UsageError(`missing ${missing.map((m) => '--' + m).join(', ')}`);
    return {
      controlPlane: f['control-plane']!,
      stateDir: f['state-dir']!,
      serial: f.serial!,
      key: f.key!,
      dockerHost: f['docker-host'],
      trustKey: f['trust-key'],
      registryProxy: f['registry-proxy'],
      allow: f.allow,
      caFile: f['ca-file'],
      tlsClientCert: f['tls-client-cert'],
      tlsClientKey: f['tls-client-key'],
      secretsDir: f['secrets-dir'],
      secretsDirAnyFs: (flags as Record<string, unknown>)['secrets-dir-any-fs'] === true,
    };
  },
  async start(options, log) {
    // Loaded only now: `--help` and a usage error never pay for the daemon's dependencies.
    const { startEdgeDaemon } = await import('./daemon.js');
    const daemon = await startEdgeDaemon({ ...options, log });
    log.info({ deviceId: daemon.deviceId }, 'edge daemon running');
    return daemon;
  },
};

export function main(argv: string[]): Promise<number> {
  return runService(argv, service);
}
