import { importPublicKey, publicKeyToRaw } from '../../protocol/keys.js';
import { labelsSchema } from '../../common/grammar.js';
import { serialSchema } from '../../protocol/device.js';
import { parseLabels } from './labels.js';

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

export type ParsedRecords = { ok: true; records: DeviceRecord[] } | { ok: false; errors: RecordError[] };

/** Splits one CSV line (RFC 4180 quoting, so a PEM in quotes with embedded newlines is not supported: use JSON lines). */
function csvFields(line: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= line.length) return null;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += line[i++];
      }
      out.push(value);
      if (i < line.length && line[i] !== ',') return null;
      i++;
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      out.push(line.slice(i, end).trim());
      i = end + 1;
    }
  }
  return out;
}

function record(line: number, serial: unknown, publicKey: unknown, labels: unknown): DeviceRecord | RecordError {
  const s = serialSchema.safeParse(serial);
  if (!s.success) return { line, message: `serial ${JSON.stringify(serial)}: ${s.error.issues[0].message}` };
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

/**
 * Parses a manufacturer's file: CSV with the header `serial,public_key,labels` (labels `k=v;k=v`)
 * or JSON lines. Every bad line is reported with its number; a duplicate serial is an error.
 */
export function parseDeviceRecords(text: string, format: 'csv' | 'jsonl'): ParsedRecords {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const records: DeviceRecord[] = [];
  const errors: RecordError[] = [];
  const seen = new Map<string, number>();
  const keys = new Map<string, DeviceRecord>();
  let sawHeader = false;
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) return;
    let r: DeviceRecord | RecordError;
    if (format === 'csv') {
      const fields = csvFields(raw);
      if (!sawHeader) {
        sawHeader = true;
        const header = fields?.map((f) => f.toLowerCase());
        if (!header || header[0] !== 'serial' || header[1] !== 'public_key' || (header.length > 2 && header[2] !== 'labels') || header.length > 3) {
          errors.push({ line, message: 'header must be serial,public_key,labels' });
        }
        return;
      }
      if (!fields || fields.length < 2 || fields.length > 3) {
        errors.push({ line, message: `expected 2 or 3 comma-separated fields (serial,public_key,labels)` });
        return;
      }
      let labels: Record<string, string>;
      try {
        labels = parseLabels(fields[2] ?? '');
      } catch (err) {
        errors.push({ line, message: `labels: ${(err as Error).message}` });
        return;
      }
      r = record(line, fields[0], fields[1], labels);
    } else {
      let obj: unknown;
      try {
        obj = JSON.parse(raw);
      } catch {
        errors.push({ line, message: 'not valid JSON' });
        return;
      }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
        errors.push({ line, message: 'expected a JSON object {"serial", "public_key", "labels"}' });
        return;
      }
      const o = obj as Record<string, unknown>;
      r = record(line, o.serial, o.public_key, o.labels ?? {});
    }
    if ('message' in r) {
      errors.push(r);
      return;
    }
    const first = seen.get(r.serial);
    if (first !== undefined) {
      errors.push({ line, message: `serial ${r.serial} already appears on line ${first}` });
      return;
    }
    const holder = keys.get(r.publicKey);
    if (holder) {
      errors.push({ line, message: `public_key is the one of serial ${holder.serial} on line ${holder.line}: each device has its own key` });
      return;
    }
    seen.set(r.serial, line);
    keys.set(r.publicKey, r);
    records.push(r);
  });
  if (format === 'csv' && !sawHeader) errors.push({ line: 1, message: 'empty file: expected the header serial,public_key,labels' });
  return errors.length ? { ok: false, errors } : { ok: true, records };
}

/** Records whose public key an already imported device with another serial holds (issue 14, finding 14). */
export function keysHeldElsewhere(records: DeviceRecord[], holders: { serial: string; publicKey: string }[]): RecordError[] {
  const bySerial = new Map(holders.map((h) => [h.publicKey, h.serial]));
  return records.flatMap((r) => {
    const holder = bySerial.get(r.publicKey);
    return holder !== undefined && holder !== r.serial ? [{ line: r.line, message: `public_key is already held by device ${holder}: each device has its own key` }] : [];
  });
}
