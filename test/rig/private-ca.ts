import { execFile } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A fleet's private CA made in a test's temp dir with the `openssl` binary, as the README tells an
 * operator to: a CA certificate, and certificates it signs for servers (SAN 127.0.0.1 and
 * localhost) and for devices (subject CN = the serial). Keys are P-256, written 0600.
 */

const run = promisify(execFile);

export interface Issued {
  certFile: string;
  keyFile: string;
}

export interface PrivateCa {
  name: string;
  caFile: string;
  /** A certificate for a server on loopback, or a device client certificate with `cn`. */
  issue(name: string, opts?: { cn?: string; dns?: string[]; ip?: string[]; client?: boolean }): Promise<Issued>;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
}

export async function makePrivateCa(dir: string, name: string): Promise<PrivateCa> {
  const caKey = join(dir, `${name}-ca.key`);
  const caFile = join(dir, `${name}-ca.pem`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', `/CN=${name} fleet CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await chmod(caKey, 0o600);
  return {
    name,
    caFile,
    async issue(leaf, opts = {}) {
      const keyFile = join(dir, `${name}-${leaf}.key`);
      const csr = join(dir, `${name}-${leaf}.csr`);
      const certFile = join(dir, `${name}-${leaf}.pem`);
      const ext = join(dir, `${name}-${leaf}.ext`);
      const sans = [...(opts.dns ?? (opts.client ? [] : ['localhost'])).map((d) => `DNS:${d}`), ...(opts.ip ?? (opts.client ? [] : ['127.0.0.1'])).map((i) => `IP:${i}`)];
      await writeFile(ext, [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature',
        `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
        ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
        '',
      ].join('\n'));
      await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${opts.cn ?? leaf}`]);
      await chmod(keyFile, 0o600);
      await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
      return { certFile, keyFile };
    },
  };
}
