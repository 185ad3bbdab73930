import type { HttpsTrust } from '../common/tls-trust.js';
import type { KeyObject } from 'node:crypto';
import { backoffDelay, retry, type BackoffPolicy } from '../common/backoff.js';
import type { Logger } from './gateway-log.js';
import { ControlClient, ControlError, retryAfterOf } from './control.js';
import type { Credentials, StateDir } from './state.js';

/** Calls to the control plane that fail (enrollment, the desired-state poll): 1 s doubling to `capMs`, half of it random. */
export function controlChannelBackoff(capMs = 30_000): BackoffPolicy {
  return { baseMs: Math.min(1000, capMs), capMs, jitter: 0.5 };
}

/** A renewal that failed is tried again after 5–10 s, while the token it renews is still valid. */
const RENEWAL_RETRY = { baseMs: 10_000, capMs: 10_000, jitter: 0.5 };

/**
 * The device's standing with the control plane: enrollment with a proof of its key, the device
 * token (renewed before expiry with a fresh proof, and at once when refused), pull tokens. Every
 * control-plane call goes through `call`, which also tracks whether the control plane answers.
 */
export class DeviceIdentity {
  readonly client: ControlClient;
  private creds: Credentials | undefined;
  private pullTokenCache: { token: string; expires: number; release: number | null } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private lastKeyRefresh = 0;
  online = false;

  constructor(
    private readonly opts: {
      controlPlane: string;
      serial: string;
      key: KeyObject;
      /** The device's X25519 public key (base64url raw), sent with every enrollment and renewal. */
      encryptionKey?: string;
      state: StateDir;
      log: Logger;
      signal: AbortSignal;
      backoffCapMs?: number;
      trust?: HttpsTrust;
    },
  ) {
    this.client = new ControlClient(opts.controlPlane, () => this.creds?.token, opts.log, opts.trust);
  }

  get deviceId(): string {
    return this.credentials.deviceId;
  }

  get credentials(): Credentials {
    if (!this.creds) throw new Error('device not enrolled yet');
    return this.creds;
  }

  /** Reuses the credentials in the state dir, or enrolls (retrying with backoff until it succeeds or the daemon closes). */
  async load(): Promise<void> {
    const saved = await this.opts.state.loadCredentials();
    if (saved && saved.serial === this.opts.serial) this.creds = saved;
    // Enrolled before it had this encryption key (an older daemon, a new key): register it now with a
    // fresh proof rather than at the next renewal; on failure the renewal tries again.
    if (this.creds && this.opts.encryptionKey && this.creds.encryptionKey !== this.opts.encryptionKey) {
      await this.enroll().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'registering the encryption key failed; the next renewal tries again'));
    }
    if (!this.creds) {
      await retry(() => this.enroll(), {
        policy: controlChannelBackoff(this.opts.backoffCapMs),
        signal: this.opts.signal,
        notBefore: retryAfterOf,
        onRetry: ({ error, delayMs }) => this.opts.log.warn({ err: (error as Error).message, retryInMs: delayMs }, 'enrollment failed; retrying'),
      });
    }
    this.scheduleRenewal();
  }

  private async enroll(): Promise<void> {
    const res = await this.client.enroll(this.opts.serial, this.opts.key, this.opts.signal, this.opts.encryptionKey);
    if (this.creds && res.deviceId !== this.creds.deviceId) throw new Error(`control plane answered device id ${res.deviceId}, this device is ${this.creds.deviceId}`);
    const creds: Credentials = {
      deviceId: res.deviceId,
      serial: this.opts.serial,
      token: res.token,
      tokenExpiresAt: res.tokenExpiresAt,
      registryProxy: res.registryProxy,
      jwks: res.jwks,
      controlPlane: this.opts.controlPlane,
      ...(this.opts.encryptionKey ? { encryptionKey: this.opts.encryptionKey } : {}),
    };
    await this.opts.state.saveCredentials(creds);
    this.creds = creds;
  }

  /** The key set documents are verified with, as one comparable string. */
  get trustedKeysTag(): string {
    return JSON.stringify(this.creds?.jwks ?? null);
  }

  /**
   * Renews now, for its fresh JWKS, after a document named a key this device does not know (a
   * rotation since the last renewal). At most once a minute: a document signed by a key the control
   * plane does not publish either must not turn into a stream of enrollments. True if it renewed.
   */
  async refreshKeys(): Promise<boolean> {
    if (Date.now() - this.lastKeyRefresh < 60_000) return false;
    this.lastKeyRefresh = Date.now();
    await this.enroll();
    return true;
  }

  private scheduleRenewal(): void {
    const left = Date.parse(this.credentials.tokenExpiresAt) - Date.now();
    // Renew at 80 % of what is left, with a fresh proof of the key; never busy-loop on a past expiry.
    const delay = Math.min(Math.max(left * 0.8, 5_000), 2 ** 31 - 1);
    this.later(delay, () => {
      this.enroll().then(
        () => this.scheduleRenewal(),
        (err: unknown) => {
          this.opts.log.warn({ err: (err as Error).message }, 'token renewal failed; retrying');
          this.later(backoffDelay(RENEWAL_RETRY, 0), () => this.scheduleRenewal());
        },
      );
    });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Runs a control-plane call; on 401 renews the token with a fresh proof and tries once more. */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      this.online = true;
      return out;
    } catch (err) {
      // No answer, or a gateway in front answering for a control plane that is down.
      if (err instanceof ControlError && (err.status === undefined || err.status >= 500)) this.online = false;
      if (!(err instanceof ControlError && err.unauthorized)) throw err;
      await this.enroll();
      return fn();
    }
  }

  /**
   * The proxy lets a pull token reach only the digests of the desired state it was minted for, so a
   * token is reused only within the release it was minted for (and while it has a minute left).
   */
  async pullToken(release: number | null): Promise<string> {
    const c = this.pullTokenCache;
    if (c && c.release === release && c.expires - Date.now() > 60_000) return c.token;
    const res = await this.call(() => this.client.pullToken(this.opts.signal));
    this.pullTokenCache = { token: res.token, expires: Date.parse(res.expiresAt), release };
    return res.token;
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
  }
}
