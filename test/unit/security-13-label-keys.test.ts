import { describe, expect, it } from 'vitest';
import { parseDeviceRecords } from '../../control-plane/devices/import-records.js';
import { generateEd25519, publicKeyToRaw } from '../../protocol/keys.js';

const key = () => publicKeyToRaw(generateEd25519().publicKey);

describe('finding 13: label keys that are Object.prototype names are accepted alike in CSV and JSON lines', () => {
  for (const name of ['constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    it(`${name}=x in CSV and in JSON lines`, () => {
      const k = key();
      const csv = parseDeviceRecords(`serial,public_key,labels\nGW-1,${k},${name}=x;site=a\n`, 'csv');
      const jsonl = parseDeviceRecords('\n' + JSON.stringify({ serial: 'GW-1', public_key: k, labels: { [name]: 'x', site: 'a' } }) + '\n', 'jsonl');
      expect(csv).toEqual(jsonl);
      expect(csv.ok && csv.records[0].labels).toEqual({ [name]: 'x', site: 'a' });
    });
  }

  it('still refuses a key given twice in CSV', () => {
    const r = parseDeviceRecords(`serial,public_key,labels\nGW-1,${key()},constructor=a;constructor=b\n`, 'csv');
    expect(r).toEqual({ ok: false, errors: [{ line: 2, message: 'labels: label constructor given twice' }], errorCount: 1 });
  });
});
