import type { Logger } from '../common/log.js';
import { revocationList } from '../protocol/service.js';

/**
 * The control plane's revocations (signing keys, devices, operator tokens), polled every
 * `pollMs`: a pull token lives 15 minutes, so without this a revoked device or a leaked key would
 * still pull until then. While the control plane cannot be reached the last list is kept (pull
 * tokens are still checked against their signature and expiry).
 */
export class RevocationPoller {
  private kids = new Set<string>();
  private subjects = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly controlPlane: string,
    private readonly pollMs: number,
    private readonly log: Logger,
    /** Over node:https with the fleet's CA when the control plane is https: (`--ca-file`). */
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Why a token with this key id and subject is refused, or null. */
  refusal(kid: string | undefined, subject: string): string | null {
    if (kid !== undefined && this.kids.has(kid)) return `signed with revoked key ${kid}`;
    if (this.subjects.has(subject)) return `${subject} is revoked`;
    return null;
  }

  async poll(): Promise<void> {
    try {
      const res = await this.fetchImpl(`${this.controlPlane.replace(/\/+$/, '')}/v1/revocations`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const list = revocationList.parse(await res.json());
      this.kids = new Set(list.kids);
      this.subjects = new Set(list.subjects);
      if (this.failing) this.log.info('revocation list reachable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err: (err as Error).message }, 'cannot read the revocation list from the control plane; keeping the last one');
      this.failing = true;
    }
  }
}
