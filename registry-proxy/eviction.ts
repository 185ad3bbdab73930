export interface CacheEntry {
  key: string;
  size: number;
  lastUsed: number;
}

/**
 * Least-recently-used eviction down to `maxBytes`. Pinned entries (being served right now) are
 * never chosen, even if that leaves the cache over its limit until they are released.
 */
export function chooseEvictions(entries: Iterable<CacheEntry>, maxBytes: number, pinned: (key: string) => boolean): string[] {
  const all = [...entries];
  let total = all.reduce((n, e) => n + e.size, 0);
  if (total <= maxBytes) return [];
  const victims: string[] = [];
  for (const e of all.sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (total <= maxBytes) break;
    if (pinned(e.key)) continue;
    victims.push(e.key);
    total -= e.size;
  }
  return victims;
}
