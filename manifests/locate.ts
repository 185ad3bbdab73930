import { isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

/**
 * Where a key path sits in the YAML source, so a schema error reads `file:line:col` like a syntax
 * error. Walks the parsed document's nodes; a path that leaves them (a merged anchor, a value the
 * schema derived) gets the position of its deepest ancestor found.
 */
export function locate(doc: Document, lines: LineCounter, path: readonly (string | number)[]): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let pos: number | undefined = (doc.contents as Node | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      pos = (pair.key as Node).range?.[0] ?? pos;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      pos = item.range?.[0] ?? pos;
      node = item;
    } else {
      break;
    }
  }
  if (pos === undefined) return {};
  const { line, col } = lines.linePos(pos);
  return { line, column: col };
}
