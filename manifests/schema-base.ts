import { z } from 'zod';
import type { Parsed } from './forms.js';
import { durationMsSchema, sizeBytesSchema } from '../common/grammar.js';

/** The pieces every part of the manifest schema shares: how values are shown, and how errors read. */

/** Renders an offending value the way an author would recognize it in their file. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return String(v);
}

export function expected(what: string) {
  return { error: (iss: { input?: unknown }) => (iss.input === undefined ? `required: expected ${what}` : `expected ${what}, got ${show(iss.input)}`) };
}

export function fail(ctx: z.RefinementCtx, message: string, path: PropertyKey[] = []): never {
  ctx.addIssue({ code: 'custom', message, path });
  return z.NEVER as never;
}

/** A zod transform from a short-form parser (forms.ts): its error becomes the issue at this key. */
export function via<I, T>(parse: (v: I) => Parsed<T>) {
  return (v: I, ctx: z.RefinementCtx): T => {
    const r = parse(v);
    return 'error' in r ? fail(ctx, r.error) : r.value;
  };
}

/** A list of short forms: each bad entry is reported at its own index. */
export function eachVia<I, T>(parse: (v: I) => Parsed<T>) {
  return (items: I[], ctx: z.RefinementCtx): T[] => {
    const out: T[] = [];
    items.forEach((item, i) => {
      const r = parse(item);
      if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error, path: [i] });
      else out.push(r.value);
    });
    return out;
  };
}

/** Durations and sizes follow the Berth-wide grammar (common/grammar.ts). */
export const duration = durationMsSchema;
export const size = sizeBytesSchema;

/** A string or a list of strings → a list (Compose's `dns: 1.1.1.1` and `dns: [1.1.1.1]`). */
export const stringOrList = z.union([z.string().transform((s) => [s]), z.array(z.string())], expected('a string or a list of strings'));

/** A list of strings, or a number or string alone. */
export const scalarList = z.array(z.union([z.string(), z.number()], expected('a string or a number')).transform(String), expected('a list'));
