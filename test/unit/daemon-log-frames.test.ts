import { describe, expect, it } from 'vitest';
import { LogFrames } from '../../edge-daemon/logs/frames.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

describe('docker log frames', () => {
  it('splits frames into lines per stream, across chunk and frame boundaries', () => {
    const f = new LogFrames();
    const bytes = Buffer.concat([frame(1, 'tick 1\ntick'), frame(2, 'oops\n'), frame(1, ' 2\r\n')]);
    const out = [...f.push(bytes.subarray(0, 5)), ...f.push(bytes.subarray(5, 20)), ...f.push(bytes.subarray(20))];
    expect(out).toEqual([
      { stream: 'stdout', line: 'tick 1' },
      { stream: 'stderr', line: 'oops' },
      { stream: 'stdout', line: 'tick 2' },
    ]);
    expect(f.flush()).toEqual([]);
  });

  it('keeps a last line without a newline until the end, and reads a TTY stream as stdout', () => {
    const f = new LogFrames();
    expect(f.push(frame(1, 'partial'))).toEqual([]);
    expect(f.flush()).toEqual([{ stream: 'stdout', line: 'partial' }]);
    const tty = new LogFrames(true);
    expect(tty.push(Buffer.from('a\nb'))).toEqual([{ stream: 'stdout', line: 'a' }]);
    expect(tty.flush()).toEqual([{ stream: 'stdout', line: 'b' }]);
  });
});
