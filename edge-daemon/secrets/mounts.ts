import { join } from 'node:path';
import { canonicalDigest } from '../../manifests/canonical.js';
import type { Service } from '../../manifests/model.js';
import { SECRETS_DIR } from '../../manifests/secrets.js';
import type { DocumentSecret } from '../../protocol/deployment.js';

/**
 * Where a service's secret files live on the gateway, pure: under the tmpfs root,
 * `<root>/<device>/secrets/<service>-<12 hex>/<target>`, the hex a digest of what the files hold
 * (the entries and the secrets' versions, never the values). A rotation gives new paths, hence a
 * new container config hash, so exactly the containers that mount a rotated secret are recreated.
 */

/** The default tmpfs root of secret files (`--secrets-dir`); /run is tmpfs on systemd gateways. */
export const DEFAULT_SECRETS_ROOT = '/run/berth';

export interface SecretMountSpec {
  /** The secret's name in the manifest. */
  name: string;
  /** Absolute path of the file on the gateway's tmpfs. */
  source: string;
  /** `/run/secrets/<target>` in the container. */
  target: string;
  ref: string;
  uid: number;
  gid: number;
  mode: number;
}

/** The daemon's secrets of one device: `<root>/<device>/secrets`. */
export function deviceSecretsDir(root: string, safeDeviceId: string): string {
  return join(root, safeDeviceId, 'secrets');
}

export function secretMounts(root: string, safeDeviceId: string, serviceName: string, service: Service, secrets: Record<string, DocumentSecret> | undefined): SecretMountSpec[] {
  const entries = service.secrets ?? [];
  if (!entries.length) return [];
  const refs = entries.map((e) => {
    const s = secrets && Object.hasOwn(secrets, e.source) ? secrets[e.source] : undefined;
    if (!s) throw new Error(`service ${serviceName} mounts secret ${e.source}, which the document does not carry`);
    return s.ref;
  });
  const dir = join(deviceSecretsDir(root, safeDeviceId), `${serviceName}-${canonicalDigest({ entries, refs }).replace(/^sha256:/, '').slice(0, 12)}`);
  return entries.map((e, i) => ({ name: e.source, source: join(dir, e.target), target: `${SECRETS_DIR}/${e.target}`, ref: refs[i], uid: e.uid, gid: e.gid, mode: e.mode }));
}
