/**
 * Docker's log stream of a container without a TTY: frames of an 8-byte header (stream type,
 * three zero bytes, big-endian length) and the payload. Pure: bytes in, lines out; a line cut
 * across frames or chunks is kept until its end arrives. A TTY container's raw stream has no
 * frames: `raw` takes it as stdout.
 */
export type LogStream = 'stdout' | 'stderr';

export class LogFrames {
  private pending: Buffer = Buffer.alloc(0);
  private readonly partial: Record<LogStream, string> = { stdout: '', stderr: '' };
  constructor(private readonly raw = false) {}

  push(chunk: Buffer): Array<{ stream: LogStream; line: string }> {
    const out: Array<{ stream: LogStream; line: string }> = [];
    if (this.raw) {
      this.text('stdout', chunk.toString('utf8'), out);
      return out;
    }
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const stream: LogStream = this.pending[0] === 2 ? 'stderr' : 'stdout';
      this.text(stream, this.pending.subarray(8, 8 + size).toString('utf8'), out);
      this.pending = this.pending.subarray(8 + size);
    }
    return out;
  }

  /** What is left without a newline at the end of the logs. */
  flush(): Array<{ stream: LogStream; line: string }> {
    const out: Array<{ stream: LogStream; line: string }> = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream]) out.push({ stream, line: this.partial[stream] });
      this.partial[stream] = '';
    }
    return out;
  }

  private text(stream: LogStream, text: string, out: Array<{ stream: LogStream; line: string }>): void {
    const parts = (this.partial[stream] + text).split('\n');
    this.partial[stream] = parts.pop() ?? '';
    for (const line of parts) out.push({ stream, line: line.endsWith('\r') ? line.slice(0, -1) : line });
  }
}
