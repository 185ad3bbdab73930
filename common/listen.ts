import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * `--listen HOST:PORT`: `127.0.0.1:7600`, `[::1]:7600`, `:7600` (loopback), `0.0.0.0:7600`,
 * `gateway.local:7600`. Port 0 picks a free one (tests). Refused with the flag named: no port, a
 * port over 65535, an IPv6 address without brackets, a host with spaces or a path.
 */
export function parseListen(listen: string, flag = '--listen'): ListenAddress {
  const bad = (why: string) => new Error(`${flag} ${JSON.stringify(listen)}: ${why} (expected HOST:PORT, e.g. 127.0.0.1:7600 or [::1]:7600)`);
  const m = /^(.*):(\d{1,5})$/.exec(listen);
  if (!m) throw bad('no port');
  const port = Number(m[2]);
  if (port > 65535) throw bad('port over 65535');
  let host = m[1];
  if (host.startsWith('[') || host.endsWith(']')) {
    if (!(host.startsWith('[') && host.endsWith(']')) || isIP(host.slice(1, -1)) !== 6) throw bad('brackets hold an IPv6 address only');
    host = host.slice(1, -1);
  } else if (host.includes(':')) {
    throw bad('an IPv6 address goes in brackets');
  } else if (host !== '' && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(host)) {
    throw bad('not an IP address or host name');
  }
  return { host: host || '127.0.0.1', port };
}

/**
 * `--listen` with several addresses, comma-separated: `127.0.0.1:7600,[::1]:7600` serves both
 * loopbacks (dual-stack without the IPv6 wildcard, which would also take every other interface).
 * Each entry as `parseListen` reads it; an empty entry or the same address twice is refused.
 */
export function parseListenList(listen: string, flag = '--listen'): ListenAddress[] {
  const out = listen.split(',').map((entry) => {
    if (entry.trim() === '') throw new Error(`${flag} ${JSON.stringify(listen)}: an empty address in the list (expected HOST:PORT[,HOST:PORT…])`);
    return parseListen(entry.trim(), flag);
  });
  const seen = new Set<string>();
  for (const a of out) {
    const key = `${a.host}|${a.port}`;
    if (a.port !== 0 && seen.has(key)) throw new Error(`${flag} ${JSON.stringify(listen)}: ${a.host}:${a.port} is listed twice`);
    seen.add(key);
  }
  return out;
}
