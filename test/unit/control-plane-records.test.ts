import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateEd25519, publicKeyToRaw } from '../../protocol/keys.js';
import { parseDeviceRecords } from '../../control-plane/devices/import-records.js';
import { parseLabels } from '../../control-plane/devices/labels.js';

const pair = generateEd25519();
const raw = publicKeyToRaw(pair.publicKey);
/** Another device's key: one key belongs to one serial. */
const raw2 = publicKeyToRaw(generateEd25519().publicKey);

describe('manufacturing records', () => {
  it('reads CSV with labels and normalizes a PEM key to the raw form', () => {
    const pem = createPublicKey(pair.privateKey).export({ format: 'pem', type: 'spki' }) as string;
    const r = parseDeviceRecords(`serial,public_key,labels\r\ngw-1,${raw},site=berlin; tier=canary\n\n# comment\ngw-2,${raw2}\n`, 'csv');
    expect(r).toEqual({
      ok: true,
      records: [
        { line: 2, serial: 'gw-1', publicKey: raw, labels: { site: 'berlin', tier: 'canary' } },
        { line: 5, serial: 'gw-2', publicKey: raw2, labels: {} },
      ],
    });
    const j = parseDeviceRecords(JSON.stringify({ serial: 'gw-3', public_key: pem, labels: { a: 'b' } }), 'jsonl');
    expect(j).toEqual({ ok: true, records: [{ line: 1, serial: 'gw-3', publicKey: raw, labels: { a: 'b' } }] });
  });

  it('reads a PEM key quoted over lines in CSV, and judges the lines of a refused multi-line record on their own', () => {
    const pem = (createPublicKey(pair.privateKey).export({ format: 'pem', type: 'spki' }) as string).trim();
    const r = parseDeviceRecords(`serial,public_key,labels\ngw-1,"${pem}",site=a\ngw-2,${raw2},\n`, 'csv');
    expect(r).toEqual({ ok: true, records: [{ line: 2, serial: 'gw-1', publicKey: raw, labels: { site: 'a' } }, { line: 5, serial: 'gw-2', publicKey: raw2, labels: {} }] });
    // The quote of line 2 is never closed properly: line 2 is bad, line 3 is still a good record (so a duplicate of it is caught).
    const bad = parseDeviceRecords(`serial,public_key,labels\ngw-1,"-----BEGIN\ngw-2,${raw2},\nx",\ngw-3,${raw2},\n`, 'csv');
    expect(bad).toMatchObject({ ok: false, errors: [{ line: 2, message: expect.stringMatching(/^public_key: .*\(the record spans lines 2-4; /) }, { line: 4 }, { line: 5, message: 'public_key is the one of serial gw-2 on line 3: each device has its own key' }] });
  });

  it('reports every bad line by number', () => {
    const r = parseDeviceRecords(`serial,public_key,labels\ngw-1,${raw},site\n-bad,${raw},\ngw-1,${raw},\ngw-4,xyz,\ngw-5,${raw},a=b,extra\n`, 'csv');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 5, 6]);
    expect(r.errors[0].message).toContain('not key=value');
    expect(r.errors[2].message).toContain('public_key');
    const dup = parseDeviceRecords(`serial,public_key,labels\ngw-1,${raw},\ngw-1,${raw},\n`, 'csv');
    expect(dup).toEqual({ ok: false, errors: [{ line: 3, message: 'serial gw-1 already appears on line 2' }], errorCount: 1 });
  });

  it('requires the CSV header and JSON objects', () => {
    expect(parseDeviceRecords(`id,key\ngw-1,${raw}\n`, 'csv')).toMatchObject({ ok: false, errors: [{ line: 1 }] });
    expect(parseDeviceRecords('', 'csv')).toMatchObject({ ok: false });
    expect(parseDeviceRecords('[1]\n', 'jsonl')).toMatchObject({ ok: false, errors: [{ line: 1 }] });
    expect(parseDeviceRecords(`{"serial":"gw-1","public_key":"${raw}","labels":{"bad key!":"x"}}`, 'jsonl')).toMatchObject({ ok: false, errors: [{ line: 1 }] });
  });

  it('parses labels', () => {
    expect(parseLabels('a=1;b=;c = x')).toEqual({ a: '1', b: '', c: 'x' });
    expect(() => parseLabels('a=1;a=2')).toThrow('given twice');
  });
});
