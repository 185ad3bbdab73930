/**
 * Release versions in the order people mean: semver's (1.10.0 after 1.9.0, 2.0.0-rc.1 before
 * 2.0.0), not the text's nor the publication time's. Versions are checked by the manifest grammar
 * (common/grammar.ts) before they get here.
 */
import semver from 'semver';

function compareVersions(a: string, b: string): number {
  // Loose: the grammar takes a leading zero (01.2.0) that strict semver refuses.
  return semver.compare(a, b, { loose: true });
}

/** By name, then the highest version first. */
export function byRelease<T extends { name: string; version: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => a.name.localeCompare(b.name) || compareVersions(b.version, a.version));
}

/** The highest version of `name` among `items` (prereleases rank below their release), or null. */
export function latestRelease<T extends { name: string; version: string }>(items: readonly T[], name: string): T | null {
  return byRelease(items.filter((m) => m.name === name))[0] ?? null;
}
