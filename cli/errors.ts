/**
 * A failure the operator can act on: what failed, why, and what to do. The CLI prints it as one
 * line (plus the hint) and exits non-zero; stack traces only with --debug.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    /** 2 = usage error (bad flags), 1 = the operation failed. */
    readonly exitCode: number = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string, usage: string): CliError {
  return new CliError(message, `usage: ${usage}`, 2);
}
