import { describe, expect, it } from 'vitest';
import { LogRelay, TooManyLogRequests, type LogPeerMessage } from '../../control-plane/device-logs/relay.js';

/** Three workers' relays joined as cluster.ts's primary joins them: stamped `from`, delivered to `to` alone when set. */
function cluster() {
  const relays = [1, 2, 3].map(() => new LogRelay());
  const woken: [number, string][] = [];
  const deliver = (from: number, msg: LogPeerMessage) => {
    relays.forEach((r, i) => {
      const slot = i + 1;
      if (slot === from || ('to' in msg && msg.to !== undefined && msg.to !== slot)) return;
      const wake = r.receive(structuredClone(msg), from);
      if (wake) woken.push([slot, wake]);
    });
  };
  relays.forEach((r, i) => (r.peers = { send: (msg) => deliver(i + 1, msg) }));
  return { relays, woken, deliver };
}

const spec = { service: 'app', tail: 10, since: null, follow: false };

describe('device logs across workers', () => {
  it("relays an operator's request through a claim and an upload made on other workers", () => {
    const { relays, woken } = cluster();
    const [one, two, three] = relays;
    const out: string[] = [];
    const asked = one.open('dev_1', spec, (l) => out.push(l));
    // The others' long polls for the device look again and see one request waiting.
    expect(woken).toEqual([[2, 'dev_1'], [3, 'dev_1']]);
    expect([one.unclaimed('dev_1'), two.unclaimed('dev_1'), three.unclaimed('dev_1')]).toEqual([1, 1, 1]);

    expect(two.claim('dev_1')).toEqual([asked.spec]);
    expect([asked.claimed, one.unclaimed('dev_1'), three.unclaimed('dev_1'), three.claim('dev_1')]).toEqual([true, 0, 0, []]);

    // The upload lands on worker 3: its lines reach worker 1's operator, in order.
    const upload = three.find('dev_1', asked.spec.id);
    expect(upload?.origin).toBe(1);
    expect(upload?.relay('{"service":"app","stream":"stdout","line":"a"}')).toBe(true);
    expect(upload?.relay('{"service":"app","stream":"stdout","line":"b"}')).toBe(true);
    upload?.end('done');
    expect(out).toEqual(['{"service":"app","stream":"stdout","line":"a"}\n', '{"service":"app","stream":"stdout","line":"b"}\n']);
    expect(asked.ended).toBe('done');
    // Gone everywhere.
    expect([one, two, three].map((r) => r.find('dev_1', asked.spec.id))).toEqual([undefined, undefined, undefined]);
  });

  it('stops the upload wherever it runs when the operator leaves', () => {
    const { relays } = cluster();
    const asked = relays[0].open('dev_1', spec, () => undefined);
    const upload = relays[1].find('dev_1', asked.spec.id);
    asked.end('the operator left');
    expect(upload?.ended).toBe('the operator left');
    expect(upload?.relay('{"service":"app","stream":"stdout","line":"late"}')).toBe(false);
    expect(relays[2].unclaimed('dev_1')).toBe(0);
  });

  it('ends the requests of a worker that is gone, and counts every worker\'s requests against the per-device limit', () => {
    const { relays, deliver } = cluster();
    for (let i = 0; i < 3; i++) relays[0].open('dev_1', spec, () => undefined);
    expect(() => relays[1].open('dev_1', spec, () => undefined)).toThrow(TooManyLogRequests);
    deliver(1, { berth: 'logs', kind: 'gone' });
    expect([relays[1].unclaimed('dev_1'), relays[2].unclaimed('dev_1')]).toEqual([0, 0]);
    expect(relays[1].open('dev_1', spec, () => undefined).spec.id).toMatch(/^log_/);
  });

  it('works alone as before when there are no peers', () => {
    const relay = new LogRelay();
    const out: string[] = [];
    const asked = relay.open('dev_1', spec, (l) => out.push(l));
    expect(relay.receive({ berth: 'logs', kind: 'end', id: asked.spec.id, reason: 'x' }, 2)).toBeNull();
    expect(relay.claim('dev_1')).toEqual([asked.spec]);
    relay.find('dev_1', asked.spec.id)?.relay('{"line":1}');
    expect(out).toEqual(['{"line":1}\n']);
    expect(asked.ended).toBeNull();
  });
});
