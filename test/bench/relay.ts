import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a service: counts the bytes that flow back to clients (what a
 * gateway pays for on a metered link), and can cut a connection after N downstream bytes (a flaky
 * link) or flip a byte (a tampering middlebox). Benchmarks and tests measure "bytes on the wire" here.
 */
export interface Relay {
  port: number;
  url: string;
  /** Bytes sent from the target to clients since start or the last reset. */
  downstreamBytes(): number;
  reset(): void;
  /**
   * Cut every connection once this many more downstream bytes have passed in total (one-shot);
   * `onCut` runs right after the cut (a bench stops the client there, as a restart would).
   */
  cutAfter(bytes: number | null, onCut?: () => void): void;
  close(): Promise<void>;
}

export async function startRelay(targetHost: string, targetPort: number): Promise<Relay> {
  let down = 0;
  let cutAt: number | null = null;
  let onCutHook: (() => void) | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      let out = chunk;
      if (cutAt !== null && down + chunk.length >= cutAt) {
        out = chunk.subarray(0, Math.max(0, cutAt - down));
        cutAt = null;
        down += out.length;
        client.end(out, () => drop());
        for (const s of sockets) if (s !== client) s.destroy();
        const hook = onCutHook;
        onCutHook = undefined;
        hook?.();
        return;
      }
      down += out.length;
      if (!client.write(out)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    downstreamBytes: () => down,
    reset: () => { down = 0; },
    cutAfter: (bytes, onCut) => {
      cutAt = bytes === null ? null : down + bytes;
      onCutHook = onCut;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
