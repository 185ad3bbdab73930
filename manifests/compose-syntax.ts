/**
 * The spellings only Compose files have: CPU counts (`"0.5"`), shell-word commands
 * (`command: /bin/app --port 8080`) and short volume specs (`data:/var/lib/x:ro`). Durations and
 * sizes are Berth-wide rules and live in common/grammar.ts. Each parser returns undefined (or an
 * error string) instead of throwing, so the schema can report every bad value of a file at once.
 */

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
