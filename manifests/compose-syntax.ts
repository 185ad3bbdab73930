/**
 * The spellings only Compose files have: CPU counts (`"0.5"`) and shell-word commands
 * (`command: /bin/app --port 8080`); the host-facing short forms (ports, devices, volumes) are in
 * forms.ts. Durations and sizes are Berth-wide rules and live in common/grammar.ts. Each parser returns undefined (or an
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
