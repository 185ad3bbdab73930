import { importPublicKey, publicKeyToRaw } from '../../protocol/keys.js';
import { labelsSchema, showValue } from '../../common/grammar.js';
import { serialSchema } from '../../protocol/device.js';
import { parseLabels } from './labels.js';
import { CsvLines, type CsvRecord } from '../../common/csv.js';

/** One manufacturing record: the first enrollment factor. */
export interface DeviceRecord {
  line: number;
  serial: string;
  /** Normalized to the base64url raw key, whatever form the file used. */
  publicKey: string;
  labels: Record<string, string>;
}

export interface RecordError {
  line: number;
  message: string;
}

/** `errors`: the first `MAX_REPORTED_ERRORS`; `errorCount`: all of them. */
export type ParsedRecords = { ok: true; records: DeviceRecord[] } | { ok: false; errors: RecordError[]; errorCount: number };

function record(line: number, serial: unknown, publicKey: unknown, labels: unknown): DeviceRecord | RecordError {
  const s = serialSchema.safeParse(serial);
  if (!s.success) return { line, message: `serial ${showValue(serial)}: ${s.error.issues[0].message}` };
  if (typeof publicKey !== 'string') return { line, message: 'public_key is missing' };
  let raw: string;
  try {
    raw = publicKeyToRaw(importPublicKey(publicKey));
  } catch (err) {
    return { line, message: `public_key: ${(err as Error).message}` };
  }
  const l = labelsSchema.safeParse(labels);
  if (!l.success) return { line, message: `labels: ${l.error.issues[0].message}` };
  return { line, serial: s.data, publicKey: raw, labels: l.data };
}

/** At most this many errors are reported (with the count of all): a file of bad lines must not make an answer of its size. */
export const MAX_REPORTED_ERRORS = 100;
/** A line (or a CSV record over several lines) longer than any record (a PEM key with labels) is refused without being parsed or kept. */
export const MAX_LINE_CHARS = 16 * 1024;

/**
 * Reads a manufacturer's file line by line: CSV with the header `serial,public_key,labels` (labels
 * `k=v;k=v`; a quoted field may span lines, as a PEM key does: common/csv.ts) or JSON lines. Every
 * bad line counts, the first `MAX_REPORTED_ERRORS` are kept with their number (a record's first
 * line); a duplicate serial or public key is an error.
 */
export class RecordsParser {
  private readonly records: DeviceRecord[] = [];
  private readonly errors: RecordError[] = [];
  private errorCount = 0;
  private readonly seen = new Map<string, number>();
  private readonly keys = new Map<string, DeviceRecord>();
  private sawHeader = false;
  private lineNo = 0;
  private readonly csv = new CsvLines(
    { record: (r) => this.csvRecord(r), error: (e) => this.fail(e), skip: (raw) => blankOrComment(raw) },
    MAX_LINE_CHARS,
  );

  constructor(private readonly format: 'csv' | 'jsonl') {}

  /** The next line of the file (without its line break). */
  line(raw: string): void {
    const line = ++this.lineNo;
    if (line === 1) raw = raw.replace(/^\uFEFF/, '');
    if (this.format === 'csv') return this.csv.push(raw, line);
    if (raw.length > MAX_LINE_CHARS) return this.fail({ line, message: `line longer than ${MAX_LINE_CHARS} characters: no record is that long` });
    if (blankOrComment(raw)) return;
    this.accept(this.jsonLine(line, raw));
  }

  result(): ParsedRecords {
    this.csv.end();
    if (this.format === 'csv' && !this.sawHeader) this.fail({ line: 1, message: 'empty file: expected the header serial,public_key,labels' });
    return this.errorCount ? { ok: false, errors: this.errors, errorCount: this.errorCount } : { ok: true, records: this.records };
  }

  private fail(e: RecordError): void {
    this.errorCount++;
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(e);
  }

  /** Keeps a record, or counts what is wrong with it; false if it was refused. */
  private accept(r: DeviceRecord | RecordError): boolean {
    if ('message' in r) return this.fail(r), false;
    const first = this.seen.get(r.serial);
    if (first !== undefined) return this.fail({ line: r.line, message: `serial ${r.serial} already appears on line ${first}` }), false;
    const holder = this.keys.get(r.publicKey);
    if (holder) return this.fail({ line: r.line, message: `public_key is the one of serial ${holder.serial} on line ${holder.line}: each device has its own key` }), false;
    this.seen.set(r.serial, r.line);
    this.keys.set(r.publicKey, r);
    this.records.push(r);
    return true;
  }

  /** A CSV record (common/csv.ts): the header first, then devices. A refused record over several lines says so. */
  private csvRecord({ line, lastLine, fields }: CsvRecord): boolean {
    const span = lastLine > line ? ` (the record spans lines ${line}-${lastLine}; its lines after the first are read again)` : '';
    if (!this.sawHeader) {
      this.sawHeader = true;
      const header = fields.map((f) => f.toLowerCase());
      if (header[0] !== 'serial' || header[1] !== 'public_key' || (header.length > 2 && header[2] !== 'labels') || header.length > 3) {
        this.fail({ line, message: `header must be serial,public_key,labels${span}` });
        return false;
      }
      return true;
    }
    if (fields.length < 2 || fields.length > 3) return this.accept({ line, message: `expected 2 or 3 comma-separated fields (serial,public_key,labels)${span}` });
    let labels: Record<string, string>;
    try {
      labels = parseLabels(fields[2] ?? '');
    } catch (err) {
      return this.accept({ line, message: `labels: ${(err as Error).message}${span}` });
    }
    const r = record(line, fields[0], fields[1], labels);
    return this.accept('message' in r ? { line, message: r.message + span } : r);
  }

  private jsonLine(line: number, raw: string): DeviceRecord | RecordError {
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch {
      return { line, message: 'not valid JSON' };
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return { line, message: 'expected a JSON object {"serial", "public_key", "labels"}' };
    const o = obj as Record<string, unknown>;
    return record(line, o.serial, o.public_key, o.labels ?? {});
  }
}

function blankOrComment(raw: string): boolean {
  return raw.trim() === '' || raw.trimStart().startsWith('#');
}

/** Parses a whole file in memory (tests, small files); the import route streams (`parseDeviceRecordStream`). */
export function parseDeviceRecords(text: string, format: 'csv' | 'jsonl'): ParsedRecords {
  const p = new RecordsParser(format);
  for (const line of text.split(/\r?\n/)) p.line(line);
  return p.result();
}

/**
 * Parses a request body as it arrives: one line at a time, never the whole file as a string nor
 * as an array of lines, and the event loop is free between chunks. A line over `MAX_LINE_CHARS`
 * is not kept past the limit.
 */
export async function parseDeviceRecordStream(body: ReadableStream<Uint8Array> | null, format: 'csv' | 'jsonl'): Promise<ParsedRecords> {
  const p = new RecordsParser(format);
  let rest = '';
  const end = (raw: string) => p.line(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  if (body) {
    for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
      let from = 0;
      for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', from)) {
        end(rest + chunk.slice(from, nl));
        rest = '';
        from = nl + 1;
      }
      // Kept only up to one character past the limit: enough to refuse the line by its length.
      rest = (rest + chunk.slice(from)).slice(0, MAX_LINE_CHARS + 1);
    }
  }
  end(rest);
  return p.result();
}

/** Records whose public key an already imported device with another serial holds (issue 14, finding 14). */
export function keysHeldElsewhere(records: DeviceRecord[], holders: { serial: string; publicKey: string }[]): RecordError[] {
  const bySerial = new Map(holders.map((h) => [h.publicKey, h.serial]));
  return records.flatMap((r) => {
    const holder = bySerial.get(r.publicKey);
    return holder !== undefined && holder !== r.serial ? [{ line: r.line, message: `public_key is already held by device ${holder}: each device has its own key` }] : [];
  });
}
