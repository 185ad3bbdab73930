import { describe, expect, it } from 'vitest';
import { keysHeldElsewhere, parseDeviceRecords } from '../../control-plane/devices/import-records.js';
import { generateEd25519, publicKeyToRaw } from '../../protocol/keys.js';

describe('finding 14: one public key on two serials is refused, naming the line and the serial holding it', () => {
  it('within one file', () => {
    const k = publicKeyToRaw(generateEd25519().publicKey);
    const r = parseDeviceRecords(`serial,public_key,labels\nGW-1,${k},\nGW-2,${k},\n`, 'csv');
    expect(r).toEqual({ ok: false, errors: [{ line: 3, message: 'public_key is the one of serial GW-1 on line 2: each device has its own key' }], errorCount: 1 });
  });

  it('against devices already imported (the same serial may keep its key)', () => {
    const k = publicKeyToRaw(generateEd25519().publicKey);
    const r = parseDeviceRecords(`serial,public_key,labels\nGW-1,${k},\nGW-9,${publicKeyToRaw(generateEd25519().publicKey)},\n`, 'csv');
    if (!r.ok) throw new Error('parse');
    expect(keysHeldElsewhere(r.records, [{ serial: 'GW-OLD', publicKey: k }])).toEqual([{ line: 2, message: 'public_key is already held by device GW-OLD: each device has its own key' }]);
    expect(keysHeldElsewhere(r.records, [{ serial: 'GW-1', publicKey: k }])).toEqual([]);
  });
});
