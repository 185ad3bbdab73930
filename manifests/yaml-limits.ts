import { isMap, isScalar, isSeq, visit, type Document } from 'yaml';

/**
 * What a manifest may cost to read. The YAML library's own duplicate-key check compares each key with
 * every earlier one of its map (quadratic: 40,000 keys held the control plane's event loop for 28 s),
 * so it is off and `duplicateKeys` below does the same check with one set per map. And the parse
 * itself costs per node, so a file with more keys than any manifest needs is refused before it is
 * parsed (`entryBudget`) and, exactly, after (`tooManyEntries`).
 */

/** More map keys and list items than any manifest needs (forty services of fifty each); more would hold the event loop past ~100 ms. */
export const MAX_MANIFEST_ENTRIES = 2000;

/** `:` `?` `-` `,` `[`: one of them comes with every key (`:` after, `?` before) and every list item. */
const INDICATORS = new Set([58, 63, 45, 44, 91]);

/**
 * The indicators bound the keys and items from above, counted in one pass without parsing. They
 * also occur inside strings, so the bound is four times the cap: only a file that could not pass
 * the exact count (`tooManyEntries`) is refused unparsed.
 */
export function entryBudget(text: string): string | undefined {
  let indicators = 0;
  for (let i = 0; i < text.length; i++) if (INDICATORS.has(text.charCodeAt(i))) indicators++;
  if (indicators <= 4 * MAX_MANIFEST_ENTRIES) return undefined;
  return `too large to read: ${indicators} of the characters : ? - , [ (every key and list item needs one; at most ${4 * MAX_MANIFEST_ENTRIES}), a manifest has at most ${MAX_MANIFEST_ENTRIES} keys and list items`;
}

/** Keys of every map plus items of every list in the document, against the cap. */
export function tooManyEntries(doc: Document): string | undefined {
  let entries = 0;
  visit(doc, {
    Map(_, node) {
      entries += node.items.length;
    },
    Seq(_, node) {
      if (isSeq(node)) entries += node.items.length;
    },
  });
  if (entries <= MAX_MANIFEST_ENTRIES) return undefined;
  return `too many keys and list items: ${entries}, a manifest has at most ${MAX_MANIFEST_ENTRIES}`;
}

/** The offset of every key that repeats an earlier scalar key of its map (the YAML library's rule), in one pass. */
export function duplicateKeys(doc: Document): number[] {
  const at: number[] = [];
  visit(doc, {
    Map(_, node) {
      if (!isMap(node)) return;
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        const value = pair.key.value;
        if (seen.has(value)) at.push(pair.key.range?.[0] ?? 0);
        seen.add(value);
      }
    },
  });
  return at;
}
