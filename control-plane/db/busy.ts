/**
 * A write the database could not take now (issue 17): SQLite's lock held past the busy timeout, or
 * `--workers`' writer process gone or restarting. Callers answer it 503 with Retry-After (http.ts),
 * not 500: the request was fine and the same one succeeds a moment later.
 */

/** The code of a write refused because the writer process was not there to take it (cluster-batches.ts). */
export const WRITER_UNAVAILABLE = 'BERTH_WRITER_UNAVAILABLE';

/** The codes on the error and on what it wraps, outermost first: drizzle keeps the driver's error on `.cause`. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

const isBusyCode = (code: string) => code.startsWith('SQLITE_BUSY') || code === WRITER_UNAVAILABLE;

/** SQLITE_BUSY (or a variant, SQLITE_BUSY_SNAPSHOT…) or WRITER_UNAVAILABLE, on the error or anything it wraps. */
export function isDatabaseBusy(err: unknown): boolean {
  return errorCodes(err).some(isBusyCode);
}

/**
 * The one code an error keeps when only a code can travel (the writer's answers over IPC): a busy
 * one if the chain has any, so the worker still answers 503, else the outermost.
 */
export function carriedCode(err: unknown): string | undefined {
  const codes = errorCodes(err);
  return codes.find(isBusyCode) ?? codes[0];
}
