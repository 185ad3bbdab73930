import type { ControlPlaneContext } from './context.js';

/**
 * Keeps this process's signing keys in step with the database when several control planes share
 * it (issue 17): a key rotated or revoked through another process is loaded here within `everyMs`.
 * Without it a process would go on signing with, and accepting tokens of, a key revoked elsewhere.
 * One read of a fingerprint of the small `signing_keys` table per interval; on a change the keys
 * are loaded again and the verified-token cache is emptied (a revoked key's tokens are checked anew).
 */
export function watchSigningKeys(ctx: Pick<ControlPlaneContext, 'client' | 'keys' | 'deviceTokens' | 'log'>, everyMs = 1000): { stop(): void } {
  let last: string | null = null;
  let busy = false;
  let stopped = false;

  async function look(): Promise<void> {
    const r = await ctx.client.execute('SELECT count(*) AS n, max(created_at) AS c, sum(coalesce(retired_at, 0)) AS r, sum(coalesce(revoked_at, 0)) AS v FROM signing_keys');
    const row = r.rows[0];
    const print = `${row.n}:${row.c}:${row.r}:${row.v}`;
    if (print === last) return;
    // The first look loads too: a change between the start's load and this read would go unseen.
    await ctx.keys.load();
    if (last !== null) {
      ctx.deviceTokens.clear();
      ctx.log.info('signing keys changed in the database: loaded again');
    }
    last = print;
  }

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    look()
      .catch((err: unknown) => {
        if (!stopped) ctx.log.warn({ err }, 'signing-key check failed');
      })
      .finally(() => (busy = false));
  }, everyMs);
  timer.unref();
  void look().catch(() => undefined);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
