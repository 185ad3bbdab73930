/**
 * Compose's scalar spellings, parsed once so every part reads the same number: durations
 * (`1m30s`, `500ms`), byte sizes (`128M`, `1g`, `512k`, plain bytes), CPU counts (`"0.5"`), and
 * shell-word commands (`command: /bin/app --port 8080`). Each parser returns undefined (or an
 * error string) instead of throwing, so the schema can report every bad value of a file at once.
 */

const DURATION_UNITS_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;

/** Go-style duration as Compose writes it (`1h`, `1m30s`, `1.5s`, `500ms`, `0s`) → whole milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  const t = text.trim();
  if (t === '0') return 0;
  if (!DURATION_RE.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(DURATION_PART)) ms += Number(m[1]) * DURATION_UNITS_MS[m[2]];
  // Sub-millisecond precision has no meaning for a health probe or a stop timeout.
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/** Compose byte value (`128M`, `1g`, `512k`, `2048`, binary multiples, case-insensitive) → bytes. */
export function parseBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const m = BYTES_RE.exec(value.trim().toLowerCase());
  if (!m || !(m[2] in BYTE_UNITS)) return undefined;
  const bytes = Math.floor(Number(m[1]) * BYTE_UNITS[m[2]]);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** `cpus: "0.5"` or `cpus: 1.5` → Docker's NanoCpus. */
export function parseNanoCpus(value: string | number): number | undefined {
  const t = typeof value === 'number' ? String(value) : value.trim();
  if (!/^\d+(?:\.\d+)?$/.test(t)) return undefined;
  const nano = Math.round(Number(t) * 1e9);
  return nano > 0 && Number.isSafeInteger(nano) ? nano : undefined;
}

/**
 * POSIX shell word splitting as Compose applies it to a string `command`/`entrypoint`: blanks
 * separate words, single quotes are literal, double quotes allow `\"`, `\\`, `\$`, `` \` ``, and a
 * backslash outside quotes escapes the next character. No expansion: there is no shell here.
 */
export function splitShellWords(text: string): { words: string[] } | { error: string } {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return { error: 'unterminated single quote' };
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const d = text[i];
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1])) {
          if (text[i + 1] !== '\n') word += text[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      if (!closed) return { error: 'unterminated double quote' };
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= text.length) return { error: 'trailing backslash' };
      if (text[i + 1] !== '\n') word += text[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return { words };
}

/** A short volume spec `name:/path[:ro|rw]`, split; bind mounts and anonymous volumes are refused. */
export function splitVolumeShort(spec: string): { source: string; target: string; readOnly: boolean } | { error: string } {
  const parts = spec.split(':');
  if (parts.length === 1) return { error: `anonymous volume ${JSON.stringify(spec)} is not supported: name it (name:${spec}) and declare it under top-level volumes` };
  if (parts.length > 3) return { error: `expected name:/path or name:/path:ro, got ${JSON.stringify(spec)}` };
  const [source, target, mode] = parts;
  if (isBindSource(source)) return { error: `bind mount ${JSON.stringify(source)} is not supported: a manifest cannot rely on a gateway's files; use a named volume` };
  if (!VOLUME_NAME_RE.test(source)) return { error: `volume name ${JSON.stringify(source)} must be letters, digits, _ . - (starting with a letter or digit)` };
  if (!target.startsWith('/')) return { error: `mount target ${JSON.stringify(target)} must be an absolute path` };
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return { error: `mount mode ${JSON.stringify(mode)} is not supported: expected ro or rw` };
  return { source, target, readOnly: mode === 'ro' };
}

export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function isBindSource(source: string): boolean {
  return source.startsWith('/') || source.startsWith('.') || source.startsWith('~') || source.startsWith('$');
}
