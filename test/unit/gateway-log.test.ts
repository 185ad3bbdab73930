import { describe, expect, it } from 'vitest';
import { createLogger as createPinoLogger } from '../../common/log.js';
import { createLogger as createGatewayLogger, type Logger } from '../../edge-daemon/gateway-log.js';

// The gateway bundle logs through edge-daemon/gateway-log.ts instead of pino (issue 11). Every
// case below runs on both, with the same clock, and the lines must be the same bytes.
const TIME = 1_795_000_000_000;

function linesOf(level: string, calls: (log: Logger) => void): { pino: string[]; gateway: string[] } {
  const pino: string[] = [];
  const gateway: string[] = [];
  calls(createPinoLogger('edge-daemon', { level, timestamp: () => `,"time":${TIME}` }, { write: (line: string) => void pino.push(line) }));
  calls(createGatewayLogger('edge-daemon', { level, now: () => TIME, write: (line) => void gateway.push(line) }));
  return { pino, gateway };
}

// Errors made once, so both loggers see the same stacks.
const plain = new Error('engine unreachable');
const coded = Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: '/var/run/docker.sock' });
const caused = new Error('apply failed', { cause: new TypeError('bad spec', { cause: new RangeError('port 70000') }) });
const notErrorCause = new Error('outer', { cause: 'a string cause' });
const aggregate = new AggregateError([new Error('first'), new Error('second')], 'two failures');
const withSecret = Object.assign(new Error('refused'), { token: 'secret-in-error', status: 401 });
const withNested = Object.assign(new Error('wrapper'), { inner: new Error('inner one'), raw: 'not copied', type: 'not copied' });
const typed = new (class EngineApiError extends Error {})('409 conflict');
class WithJson {
  toJSON(): unknown {
    return { as: 'json' };
  }
}

const CALLS: Record<string, (log: Logger) => void> = {
  'a message alone': (log) => log.info('applying release'),
  'fields and a message': (log) => log.info({ deviceId: 'dev-1', sequence: 3, rollingBack: false, steps: ['stop', 'create'], plan: { images: 5, deltaDisk: { state: 0 } } }, 'download plan'),
  'fields alone': (log) => log.info({ port: 45_001 }),
  'values pino writes specially': (log) =>
    log.warn({ gone: undefined, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, nil: null, fn: () => 1, at: new Date(TIME), map: new Map([[1, 2]]), json: new WithJson(), bare: Object.assign(Object.create(null) as object, { a: 1 }) }, 'odd values'),
  'strings needing escapes': (log) => log.info({ quote: 'say "hi"\\', ctl: 'line\nnext\ttab\u0001', uni: 'café ✓ 🚢', lone: 'x\ud800y', long: 'L'.repeat(150) + '"' }, 'escapes "here"\n'),
  'an Error as err': (log) => log.error({ err: plain, job: 'poll' }, 'daemon work failed'),
  'an Error as err, no message': (log) => log.error({ err: coded }),
  'an error message as err': (log) => log.warn({ err: 'socket hang up', retryInMs: 1500 }, 'desired state not fetched; keeping the running release'),
  'an error message as err, no message': (log) => log.warn({ err: 'socket hang up' }),
  'causes': (log) => log.warn({ err: caused }, 'apply failed; restoring the running release'),
  'a cause that is not an error': (log) => log.warn({ err: notErrorCause }, 'x'),
  'aggregated errors': (log) => log.error({ err: aggregate }, 'y'),
  'an error with a secret field': (log) => log.warn({ err: withSecret }, 'z'),
  'an error with a nested error and reserved fields': (log) => log.warn({ err: withNested }, 'w'),
  'an error subclass': (log) => log.fatal({ err: typed }, 'uncaught failure: 409 conflict; exiting'),
  'an error-like object': (log) => log.error({ err: { message: 'like an error', code: 7 } }, 'v'),
  'an Error first': (log) => log.error(plain),
  'an Error first with a message': (log) => log.error(coded, 'engine call failed'),
  'an error elsewhere than err': (log) => log.warn({ error: plain }, 'u'),
  'secrets at the top level': (log) => log.info({ token: 'secret-token', authorization: { scheme: 'Bearer' }, password: 1234, privateKey: undefined, keep: 'visible-1' }, 'credentials'),
  'secrets one level down': (log) => log.info({ request: { token: 'secret-2', authorization: 'Bearer secret-3', password: 'secret-4', privateKey: 'secret-5', keep: 'visible-2' }, headers: { authorization: 'Bearer secret-6', accept: 'application/json' } }, 'call'),
  'secrets deeper and in arrays (pino leaves them)': (log) => log.info({ a: { b: { token: 'visible-3' } }, list: [{ token: 'visible-4' }] }, 'deep'),
  'a secret key whose value is undefined one level down': (log) => log.info({ creds: { token: undefined, user: 'u' } }, 'undefined'),
  'a message field and a message': (log) => log.info({ msg: 'field', n: 1 }, 'argument'),
  'a child': (log) => log.child({ opId: 'ab12cd34' }).info({ release: 'app@1.0.0', sequence: 4 }, 'release committed'),
  'a child of a child': (log) => log.child({ part: 'download' }).child({ op: '0274c1a6', gone: undefined }).debug({ image: 'registry.example.com/app:1' }, 'resuming blob download'),
  'a child with secrets, an error and reserved keys': (log) => log.child({ token: 'secret-7', session: { password: 'secret-8' }, err: plain, level: 99, serializers: 1, opId: 'o' }).warn({ opId: 'again' }, 'dup keys'),
  'every level': (log) => {
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
  },
};

describe('gateway logger against pino (issue 11)', () => {
  for (const [name, calls] of Object.entries(CALLS)) {
    it(`writes pino's line: ${name}`, () => {
      const { pino, gateway } = linesOf('trace', calls);
      expect(pino.length).toBeGreaterThan(0);
      expect(gateway).toEqual(pino);
    });
  }

  it('leaves out what pino leaves out at each level, and takes the level names pino takes', () => {
    const every = CALLS['every level'];
    for (const level of ['debug', 'info', 'warn', 'error', 'fatal', 'WARN', 'silent']) {
      const { pino, gateway } = linesOf(level, every);
      expect(gateway, level).toEqual(pino);
    }
    expect(linesOf('warn', every).gateway.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['w', 'e', 'f']);
    expect(linesOf('silent', every).gateway).toEqual([]);
    for (const level of ['verbose', '', 'SILENT']) {
      expect(() => linesOf(level, every), level).toThrow(`default level:${level} must be included in custom levels`);
      expect(() => createGatewayLogger('edge-daemon', { level }), level).toThrow(`default level:${level} must be included in custom levels`);
    }
  });

  it('never writes a secret the redaction covers', () => {
    const all = Object.values(CALLS).flatMap((calls) => linesOf('trace', calls).gateway).join('');
    expect(all).toContain('"token":"[redacted]"');
    expect(all).not.toMatch(/secret-(?:token|in-error|\d)/);
    expect(all).toContain('visible-3');
  });
});
