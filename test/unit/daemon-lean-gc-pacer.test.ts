import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../common/digest.js';
import { createLogger } from '../../common/log.js';
import { GcPacer, minorGc } from '../../edge-daemon/download/gc-pacer.js';
import { startHandoverRegistry } from '../../edge-daemon/download/local-registry.js';

const log = createLogger('test', { level: 'silent' });

describe('GC pacing of streamed bytes', () => {
  it('collects once per `everyBytes` moved, whatever the chunk sizes', () => {
    let collections = 0;
    const pacer = new GcPacer(() => (collections += 1), 1000);
    for (const n of [400, 400, 199]) pacer.moved(n);
    expect(collections).toBe(0);
    pacer.moved(1);
    expect(collections).toBe(1);
    for (let i = 0; i < 10; i++) pacer.moved(500);
    expect(collections).toBe(6);
  });

  it('does nothing without a gc function', () => {
    expect(() => new GcPacer(undefined, 1).moved(10)).not.toThrow();
  });

  it('obtains a working young-generation collection from the runtime', () => {
    const gc = minorGc();
    expect(typeof gc).toBe('function');
    expect(() => gc!()).not.toThrow();
    // The main context's globals stay as they were.
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });

  it('the handover registry counts the bytes it serves and serves them unchanged (whole and ranged)', async () => {
    const blob = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    const digest = sha256Digest(blob);
    const dir = mkdtempSync(join(tmpdir(), 'berth-pacer-unit-'));
    writeFileSync(join(dir, 'blob'), blob);
    let collections = 0;
    const registry = await startHandoverRegistry({ manifest: async () => undefined, blob: async (d) => (d === digest ? { path: join(dir, 'blob'), size: blob.length } : undefined) }, log, new GcPacer(() => (collections += 1), 1024 * 1024));
    const get = (init?: RequestInit): Promise<Response> => fetch(`http://${registry.host}/v2/dev1/app/blobs/${digest}`, init);
    try {
      const whole = await get();
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-length')).toBe(String(blob.length));
      expect(sha256Digest(Buffer.from(await whole.arrayBuffer()))).toBe(digest);
      expect(collections).toBe(3);
      const ranged = await get({ headers: { Range: 'bytes=10-19' } });
      expect(ranged.status).toBe(206);
      expect(Buffer.from(await ranged.arrayBuffer()).equals(blob.subarray(10, 20))).toBe(true);
      const head = await get({ method: 'HEAD' });
      expect([head.status, head.headers.get('content-length')]).toEqual([200, String(blob.length)]);
    } finally {
      await registry.close();
    }
  });
});
