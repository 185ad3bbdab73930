/**
 * CSV records read line by line (RFC 4180 quoting), for files that arrive as a stream: a quoted
 * field may hold line breaks (a PEM public key), and one bad quote costs only its own record.
 * csv-parse was tried (cli/README.md, "Libraries") and after `gw-3,"bad"x,` folded the following
 * good lines into the bad record, so they were neither imported nor reported. Here, when a record
 * that spans lines turns out bad (a character after its closing quote, no closing quote before the
 * end or before the size cap) or its reader refuses it, the error names the line it started on and
 * the lines after that one are read again as new records: every line is either part of a good
 * record or judged on its own, with its own number.
 */

/** One record: its fields and the lines it spans (`line` = `lastLine` unless a quoted field holds line breaks). */
export interface CsvRecord {
  line: number;
  lastLine: number;
  fields: string[];
}

export interface CsvError {
  line: number;
  message: string;
}

/** The text of one record, split: its fields, a quoted field still open at the end, or what is wrong where. */
export type CsvSplit = { fields: string[] } | { open: true } | { error: string; at: number };

/** Splits a record's text into fields; unquoted fields are trimmed, `""` inside quotes is one quote. */
export function splitRecord(text: string): CsvSplit {
  const out: string[] = [];
  let i = 0;
  while (i <= text.length) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) return { open: true };
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i++];
      }
      out.push(value);
      if (i < text.length && text[i] !== ',') return { error: `${JSON.stringify(text[i])} after a closing quote: a quoted field ends at a comma or the end of the line (a quote inside it is written "")`, at: i };
      i++;
    } else {
      const comma = text.indexOf(',', i);
      const end = comma < 0 ? text.length : comma;
      out.push(text.slice(i, end).trim());
      i = end + 1;
    }
  }
  return { fields: out };
}

export interface CsvSink {
  /** A record was read; false if its reader refused it (then the lines after its first are read again). */
  record(r: CsvRecord): boolean;
  error(e: CsvError): void;
  /** A line that starts no record (blank, a comment); only asked at a record's start. */
  skip(raw: string): boolean;
}

/** Feeds lines in order, numbered from 1 without gaps; `end()` after the last. */
export class CsvLines {
  /** A record whose quoted field is still open: its first line and the lines so far. */
  private pending: { line: number; lines: string[]; chars: number } | null = null;

  /** `maxChars`: the longest record (all its lines), so an unclosed quote cannot hold the rest of the file. */
  constructor(
    private readonly sink: CsvSink,
    private readonly maxChars: number,
  ) {}

  push(raw: string, line: number): void {
    const p = this.pending;
    if (!p) return this.start(raw, line);
    p.lines.push(raw);
    p.chars += raw.length + 1;
    if (p.chars > this.maxChars) return this.fail(`a quoted field opened on line ${p.line} runs past ${this.maxChars} characters without its closing quote`);
    const split = splitRecord(p.lines.join('\n'));
    if ('open' in split) return;
    this.pending = null;
    if ('error' in split) {
      this.sink.error({ line: p.line, message: `${split.error} (line ${p.line + lineOf(p.lines.join('\n'), split.at)}, in a record from line ${p.line})` });
      return this.replay(p.lines, p.line);
    }
    if (!this.sink.record({ line: p.line, lastLine: line, fields: split.fields })) this.replay(p.lines, p.line);
  }

  end(): void {
    while (this.pending) this.fail(`the quoted field opened on line ${this.pending.line} has no closing quote`);
  }

  private start(raw: string, line: number): void {
    if (raw.length > this.maxChars) return this.sink.error({ line, message: `line longer than ${this.maxChars} characters: no record is that long` });
    if (this.sink.skip(raw)) return;
    const split = splitRecord(raw);
    if ('open' in split) this.pending = { line, lines: [raw], chars: raw.length };
    else if ('error' in split) this.sink.error({ line, message: split.error });
    else this.sink.record({ line, lastLine: line, fields: split.fields });
  }

  private fail(message: string): void {
    const p = this.pending!;
    this.pending = null;
    this.sink.error({ line: p.line, message });
    this.replay(p.lines, p.line);
  }

  /** The lines after a bad record's first, read again as the starts of records. */
  private replay(lines: string[], first: number): void {
    for (let i = 1; i < lines.length; i++) this.push(lines[i], first + i);
  }
}

/** The 0-based line, within a record's text, of a character. */
function lineOf(text: string, at: number): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < at; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
