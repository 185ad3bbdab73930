import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { HttpError } from '../http.js';

/**
 * Optional mutual TLS for the device routes (`berth control-plane --device-client-ca FILE`): a third
 * factor next to the imported record and the proof of the device key, for fleets whose gateways
 * carry a manufacturer certificate (TPM, secure element). The handshake asks every client for a
 * certificate without requiring one (operators have none); here the device routes require one that
 * chains to the device CA and names the device's serial, in its subject CN or a SAN entry.
 */

export interface PresentedCertificate {
  authorized: boolean;
  authorizationError?: string;
  cert?: Pick<X509Certificate, 'subject' | 'subjectAltName'>;
}

/** Why this certificate does not admit `serial`, or null when it does (pure). */
export function clientCertificateRefusal(p: PresentedCertificate, serial: string): { status: 401 | 403; code: string; message: string } | null {
  if (!p.cert) return { status: 401, code: 'client-certificate-required', message: 'this control plane requires a device client certificate on device routes (--device-client-ca); none was presented' };
  if (!p.authorized) return { status: 401, code: 'client-certificate-untrusted', message: `the client certificate is not from the device CA (${p.authorizationError ?? 'not verified'})` };
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(p.cert.subject)?.[1];
  const sans = (p.cert.subjectAltName ?? '').split(/,\s*/).map((e) => e.slice(e.indexOf(':') + 1));
  if (cn === serial || sans.includes(serial)) return null;
  return { status: 403, code: 'client-certificate-mismatch', message: `the client certificate names ${cn ? `CN=${cn}` : 'no CN'}${sans.filter(Boolean).length ? ` and ${sans.join(', ')}` : ''}, not device ${serial}` };
}

/** Throws the refusal when this socket's client certificate does not admit `serial` (the caller checks that certificates are required). */
export function checkSocketCertificate(s: Socket | undefined, serial: string): void {
  const socket = s as TLSSocket | undefined;
  const cert = socket?.getPeerX509Certificate?.();
  const refusal = clientCertificateRefusal({ authorized: socket?.authorized ?? false, authorizationError: socket?.authorizationError?.toString(), cert }, serial);
  if (refusal) throw new HttpError(refusal.status, refusal.code, refusal.message);
}
