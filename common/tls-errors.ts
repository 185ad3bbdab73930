/**
 * A TLS verification failure in words an operator acts on. Apart from tls-trust.ts so that code
 * on the daemon's always-loaded path (the control channel) names failures without loading
 * node:https before an https: URL needs it.
 */

const UNTRUSTED = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE']);

/** A TLS verification failure in plain words (what, whose, what to do), or null for other errors. */
export function describeTlsError(err: unknown, url: string, caFile?: string): string | null {
  const e = (err instanceof Error && (err as { cause?: unknown }).cause instanceof Error ? (err as { cause: Error }).cause : err) as NodeJS.ErrnoException;
  const code = e?.code;
  if (!code) return null;
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  if (UNTRUSTED.has(code)) {
    return `the TLS certificate of ${host} is not signed by a CA this client trusts (${code}); ${caFile ? `it is not from the CA in ${caFile}` : "pass the fleet's CA with --ca-file"}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the TLS certificate of ${host} does not name ${new URL(url).hostname} (${e.message})`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the TLS certificate of ${host} is not valid now (${code})`;
  return null;
}
