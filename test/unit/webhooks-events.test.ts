import { describe, expect, it } from 'vitest';
import { afterAttempt, eventBody, patternMatches, RETRY_FOR_MS, signBody, verifySignature, wants } from '../../control-plane/webhooks/events.js';
import { eventPattern, webhookEvent } from '../../protocol/webhooks.js';

describe('webhook events (pure)', () => {
  it('matches exact types, families and *, and never sends webhook.test to a pattern', () => {
    expect(patternMatches('campaign.*', 'campaign.completed')).toBe(true);
    expect(patternMatches('campaign.*', 'device.failed')).toBe(false);
    expect(patternMatches('device.failed', 'device.failed')).toBe(true);
    expect(patternMatches('device.fail', 'device.failed')).toBe(false);
    expect(wants(['*'], 'manifest.published')).toBe(true);
    expect(wants(['*'], 'webhook.test')).toBe(false);
    expect(eventPattern.safeParse('campaign.*').success).toBe(true);
    expect(eventPattern.safeParse('campaigns.*').success).toBe(false);
    expect(eventPattern.safeParse('device.exploded').success).toBe(false);
  });

  it('signs the exact bytes it sends (CloudEvents JSON), verifiable in constant time', () => {
    const body = eventBody({ id: 'evt_1', type: 'campaign.completed', subject: 'campaigns/c1', at: Date.UTC(2026, 0, 2), data: { campaignId: 'c1' } }, 'http://cp.example.com');
    expect(webhookEvent.parse(JSON.parse(body))).toMatchObject({ specversion: '1.0', time: '2026-01-02T00:00:00.000Z', datacontenttype: 'application/json' });
    const sig = signBody('s3cret-s3cret-s3cret', body);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature('s3cret-s3cret-s3cret', body, sig)).toBe(true);
    expect(verifySignature('s3cret-s3cret-s3cret', body.replace('c1', 'c2'), sig)).toBe(false);
    expect(verifySignature('s3cret-s3cret-s3cret', body, undefined)).toBe(false);
  });

  it('retries with growing delays for a day, then gives up naming why', () => {
    const t0 = 1_000_000;
    const fail = { ok: false as const, status: 500, error: 'the receiver answered 500' };
    let d = { attempts: 0, createdAt: t0 };
    let now = t0;
    const delays: number[] = [];
    for (;;) {
      const u = afterAttempt(d, fail, now, () => 0.5);
      if (u.state !== 'pending') {
        expect(u.state).toBe('failed');
        expect(u.lastError).toMatch(/gave up after \d+ attempts over a day: the receiver answered 500/);
        break;
      }
      delays.push(u.nextAttemptAt - now);
      now = u.nextAttemptAt;
      d = { attempts: u.attempts, createdAt: t0 };
    }
    expect(delays[1]).toBeGreaterThan(delays[0]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(15 * 60_000);
    expect(now - t0).toBeLessThanOrEqual(RETRY_FOR_MS);
    expect(now - t0).toBeGreaterThan(RETRY_FOR_MS - 15 * 60_000);
    expect(afterAttempt({ attempts: 3, createdAt: t0 }, { ok: true, status: 204 }, now)).toMatchObject({ state: 'delivered', attempts: 4, deliveredAt: now });
  });
});
