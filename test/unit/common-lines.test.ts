import { describe, expect, it } from 'vitest';
import { LineBuffer } from '../../common/lines.js';

describe('LineBuffer', () => {
  it('returns the lines a chunk completes and keeps a line cut across chunks until it ends', () => {
    const b = new LineBuffer();
    expect(b.push('{"a":1}\n{"b"')).toEqual(['{"a":1}']);
    expect(b.push(':2}')).toEqual([]);
    expect(b.push('\n\n{"c":3}\n')).toEqual(['{"b":2}', '', '{"c":3}']);
    expect(b.push('tail')).toEqual([]);
    expect(b.rest()).toBe('tail');
    expect(b.rest()).toBe('');
  });
});
