import { describe, expect, it } from 'vitest';
import { parseListen, parseListenList } from '../../common/listen.js';

describe('parseListen', () => {
  it('reads IPv4, bracketed IPv6, host names and an empty host (loopback)', () => {
    expect(parseListen('127.0.0.1:7600')).toEqual({ host: '127.0.0.1', port: 7600 });
    expect(parseListen('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseListen('[::1]:7601')).toEqual({ host: '::1', port: 7601 });
    expect(parseListen('[::]:7601')).toEqual({ host: '::', port: 7601 });
    expect(parseListen('gateway.local:65535')).toEqual({ host: 'gateway.local', port: 65535 });
    expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListen(':7600')).toEqual({ host: '127.0.0.1', port: 7600 });
  });

  it('refuses what cannot be listened on, naming the flag and why', () => {
    expect(() => parseListen('7600')).toThrow('--listen "7600": no port (expected HOST:PORT');
    expect(() => parseListen('127.0.0.1:')).toThrow(/no port/);
    expect(() => parseListen('127.0.0.1:65536')).toThrow(/port over 65535/);
    expect(() => parseListen('127.0.0.1:123456')).toThrow(/no port/);
    expect(() => parseListen('::1:7600')).toThrow(/IPv6 address goes in brackets/);
    expect(() => parseListen('[127.0.0.1]:7600')).toThrow(/brackets hold an IPv6 address only/);
    expect(() => parseListen('[::1:7600')).toThrow(/brackets/);
    expect(() => parseListen('my host:7600')).toThrow(/not an IP address or host name/);
    expect(() => parseListen('http://x:7600')).toThrow(/IPv6 address goes in brackets|not an IP/);
    expect(() => parseListen('a/b:7600')).toThrow(/not an IP address or host name/);
    expect(() => parseListen('x', '--metrics-listen')).toThrow(/^--metrics-listen "x"/);
  });
});

describe('parseListenList', () => {
  it('reads one address or several, comma-separated, in order', () => {
    expect(parseListenList('127.0.0.1:7600')).toEqual([{ host: '127.0.0.1', port: 7600 }]);
    expect(parseListenList('127.0.0.1:7600,[::1]:7600')).toEqual([
      { host: '127.0.0.1', port: 7600 },
      { host: '::1', port: 7600 },
    ]);
    expect(parseListenList('127.0.0.1:0,127.0.0.1:0')).toHaveLength(2);
  });

  it('refuses an empty entry, the same address twice, and a bad entry, naming the flag', () => {
    expect(() => parseListenList('127.0.0.1:7600,')).toThrow('--listen "127.0.0.1:7600,": an empty address in the list');
    expect(() => parseListenList('[::1]:7600,[::1]:7600')).toThrow(/::1:7600 is listed twice/);
    expect(() => parseListenList('127.0.0.1:7600,::1:7600')).toThrow(/IPv6 address goes in brackets/);
  });
});
