/**
 * The safety rail of destructive verbs (`devices revoke|rm`, `campaigns abort`, `keys revoke`,
 * `secrets rm`, `context rm`, …): on a terminal they ask first; `--yes` answers for a script. With no
 * terminal to ask on and no `--yes`, they refuse (exit 2) before anything is sent, so a pipeline
 * that forgot the flag changes nothing instead of changing it silently.
 */
import type { Io } from './context.js';
import { CliError } from './errors.js';

/** What the verb is about to do, in words a person checks before saying yes. */
export interface Destructive {
  /** `revoke device gw-a` */
  action: string;
  /** What cannot be undone, said before the question. */
  consequence: string;
}

/** Pure: a typed answer means yes only when it says so; anything else (Enter included) is no. */
export function isYes(answer: string): boolean {
  return /^(y|yes)$/i.test(answer.trim());
}

/**
 * Returns when the operator confirmed (or passed `--yes`); otherwise throws: exit 2 when there was
 * no terminal to ask on, exit 1 when the operator said no. Nothing has been sent either way.
 */
export async function confirmDestructive(io: Io, yes: boolean, d: Destructive): Promise<void> {
  if (yes) return;
  if (!io.stdinIsTTY || !io.ask) {
    throw new CliError(`${d.action} needs confirmation: there is no terminal to ask on, and --yes was not given`, `${d.consequence}; add --yes to do it without asking`, 2);
  }
  io.err(`${d.consequence}.`);
  const answer = await io.ask(`${d.action}? [y/N] `);
  if (!isYes(answer)) throw new CliError(`${d.action}: not confirmed; nothing was changed`, 'answer y to go ahead, or pass --yes');
}

/** The flag every destructive verb takes (the framework's option declaration). */
export const yesOption = { yes: { type: 'boolean', short: 'y', description: 'do it without asking (needed when there is no terminal)' } } as const;
