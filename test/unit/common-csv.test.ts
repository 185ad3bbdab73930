import { describe, expect, it } from 'vitest';
import { CsvLines, splitRecord, type CsvError, type CsvRecord } from '../../common/csv.js';

/** Reads `text` line by line as the import route does; `refuse` rejects records by their first field. */
function read(text: string, opts: { max?: number; refuse?: (fields: string[]) => boolean } = {}) {
  const records: CsvRecord[] = [];
  const errors: CsvError[] = [];
  const lines = new CsvLines(
    {
      record: (r) => {
        if (opts.refuse?.(r.fields)) return errors.push({ line: r.line, message: 'refused' }), false;
        records.push(r);
        return true;
      },
      error: (e) => errors.push(e),
      skip: (raw) => raw.trim() === '' || raw.startsWith('#'),
    },
    opts.max ?? 16 * 1024,
  );
  text.split('\n').forEach((l, i) => lines.push(l, i + 1));
  lines.end();
  return { records: records.map((r) => [r.line, r.lastLine, ...r.fields]), errors: errors.map((e) => e.line), messages: errors.map((e) => e.message) };
}

const PEM = '"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"';

describe('CSV records over lines (common/csv.ts)', () => {
  it('splits fields: quotes, doubled quotes, trimmed bare fields, an empty last field', () => {
    expect(splitRecord('a, b ,"c,""d"""')).toEqual({ fields: ['a', 'b', 'c,"d"'] });
    expect(splitRecord('gw-1,key,')).toEqual({ fields: ['gw-1', 'key', ''] });
    expect(splitRecord('gw-1,"open')).toEqual({ open: true });
    expect(splitRecord('gw-3,"bad"x,')).toMatchObject({ at: 10 });
  });

  it('reads a quoted PEM key spanning lines as one record starting at its first line', () => {
    const r = read(`serial,public_key,labels\ngw-1,${PEM},site=a\ngw-2,k2,`);
    expect(r.errors).toEqual([]);
    expect(r.records).toEqual([
      [1, 1, 'serial', 'public_key', 'labels'],
      [2, 4, 'gw-1', '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----', 'site=a'],
      [5, 5, 'gw-2', 'k2', ''],
    ]);
  });

  it('keeps blank and comment-like lines inside a quoted field; skips them only between records', () => {
    const r = read('h\n\n# note\ngw-1,"a\n\n# not a comment\nb"\ngw-2,k');
    expect(r.records).toEqual([[1, 1, 'h'], [4, 7, 'gw-1', 'a\n\n# not a comment\nb'], [8, 8, 'gw-2', 'k']]);
  });

  it('reports a bad quote on its line and reads the next lines as records', () => {
    const r = read('h\ngw-3,"bad"x,\ngw-4,k4,\ngw-5,k5,');
    expect(r.errors).toEqual([2]);
    expect(r.messages[0]).toMatch(/^"x" after a closing quote/);
    expect(r.records.map((x) => x[0])).toEqual([1, 3, 4]);
  });

  it('never folds good lines into a quote left open: each is read again on its own', () => {
    // Line 2 opens a quote that line 4's first quote closes, followed by "s": that record is bad,
    // and lines 3 and 4, read again, are good records (line 4 with its quoted labels).
    const r = read('h\ngw-2,"open,\ngw-3,k3,\ngw-4,k4,"site=a"\ngw-5,k5,');
    expect(r.errors).toEqual([2]);
    expect(r.messages[0]).toMatch(/\(line 4, in a record from line 2\)$/);
    expect(r.records).toEqual([[1, 1, 'h'], [3, 3, 'gw-3', 'k3', ''], [4, 4, 'gw-4', 'k4', 'site=a'], [5, 5, 'gw-5', 'k5', '']]);
    // No closing quote before the end: the line is reported, the ones after it are records.
    const end = read('h\ngw-2,"open\ngw-3,k3,\ngw-4,k4,');
    expect(end.errors).toEqual([2]);
    expect(end.messages[0]).toBe('the quoted field opened on line 2 has no closing quote');
    expect(end.records.map((x) => x[0])).toEqual([1, 3, 4]);
  });

  it('caps a record: a quote open past the limit is reported and its lines read again', () => {
    const r = read(`h\ngw-2,"open\n${'x'.repeat(30)}\ngw-4,k4,\ngw-5,"k5",`, { max: 40 });
    expect(r.errors).toEqual([2]);
    expect(r.messages[0]).toBe('a quoted field opened on line 2 runs past 40 characters without its closing quote');
    expect(r.records.map((x) => x[0])).toEqual([1, 3, 4, 5]);
    expect(read(`${'y'.repeat(41)}\nok`, { max: 40 }).errors).toEqual([1]);
  });

  it('reads again the lines of a multi-line record its reader refused, so a swallowed good line still counts', () => {
    // The quote of line 2 closes at the end of line 4: one well-formed record, wrong to the reader.
    const r = read('h\ngw-2,"-----BEGIN\ngw-3,k3,\n-----END",\ngw-5,k5,', { refuse: (f) => f[1]?.includes('BEGIN') === true });
    expect(r.errors).toEqual([2]);
    expect(r.records.map((x) => x[0])).toEqual([1, 3, 4, 5]);
    expect(r.records[1]).toEqual([3, 3, 'gw-3', 'k3', '']);
  });
});
