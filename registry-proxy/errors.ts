/**
 * OCI Distribution error codes and their HTTP statuses. Clients (docker, skopeo, the edge daemon)
 * branch on `code`, so every refusal carries one, with a message naming what was wrong.
 */
export const OCI_STATUS = {
  NAME_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  NAME_INVALID: 400,
  MANIFEST_INVALID: 400,
  RANGE_INVALID: 416,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  // Not OCI codes but the same shape: the upstream failed us, not the client.
  UPSTREAM_ERROR: 502,
  UPSTREAM_DIGEST_MISMATCH: 502,
  UPSTREAM_UNAVAILABLE: 503,
} as const;

export type OciCode = keyof typeof OCI_STATUS;

export class OciError extends Error {
  readonly status: number;
  constructor(readonly code: OciCode, message: string, readonly detail?: unknown, status?: number) {
    super(message);
    this.name = 'OciError';
    this.status = status ?? OCI_STATUS[code];
  }
}

export function ociErrorBody(err: OciError): string {
  return JSON.stringify({ errors: [{ code: err.code, message: err.message, ...(err.detail !== undefined ? { detail: err.detail } : {}) }] });
}
