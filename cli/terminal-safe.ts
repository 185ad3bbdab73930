import { randomBytes } from 'node:crypto';

/**
 * What reaches the operator's terminal (issue 14, finding 10). Device reports, labels, errors and
 * names come from parties the operator does not control; an ESC or another control character in
 * them could clear the screen, move the cursor over what the CLI printed, or plant OSC-8 links.
 * Every human-readable line goes through `terminalSafe`, which shows each control character as
 * `\xNN` (`\uNNNN` for C1 and bidirectional overrides). The CLI's own escapes (colours, the redraw
 * of `--watch`) are written with `ESC` and `CR` below, markers no one else can know (a random
 * nonce per process), and become real escapes only after the escaping. JSON output is left exact.
 */
const NONCE = randomBytes(8).toString('hex');
export const ESC = `\uE000${NONCE}\uE001`;
export const CR = `\uE000${NONCE}\uE002`;

/** C0 but newline and tab, DEL, C1, and the bidirectional controls that reorder what is shown. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function shown(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Human-readable text for a terminal: control characters shown, the CLI's own escapes made real. */
export function terminalSafe(text: string): string {
  return ownEscapes(text.replace(UNSAFE, shown));
}

/** Only the CLI's own markers made real (JSON output: nothing else changes). */
export function ownEscapes(text: string): string {
  return text.split(ESC).join('\x1b').split(CR).join('\r');
}
