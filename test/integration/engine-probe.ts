import { request } from 'node:http';
import type Docker from 'dockerode';

/** Probes the stack tests use to see from outside and inside what a gateway runs. */

/** Runs a command in a running container: its exit code and its stdout+stderr (frames demultiplexed). */
export async function execIn(docker: Docker, container: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const e = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({});
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
  // Each frame: 8-byte header (stream, 3 zero bytes, big-endian length), then the payload.
  const raw = Buffer.concat(chunks);
  let out = '';
  for (let i = 0; i + 8 <= raw.length; i += 8 + raw.readUInt32BE(i + 4)) out += raw.subarray(i + 8, i + 8 + raw.readUInt32BE(i + 4)).toString('utf8');
  return { code: (await e.inspect()).ExitCode ?? -1, out };
}

/** GET / on a published port of 127.0.0.1 (the only address tests talk to). */
export function getLoopback(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`127.0.0.1:${port} did not answer in 3 s`)));
    req.on('error', reject);
    req.end();
  });
}
