/**
 * Reading a parse's positionals and string flags: apart from args.ts (which needs zod for its
 * grammars) so the light paths (`berth __complete`, `completion`, cli/index.ts) can use them.
 */
import { usageError } from './errors.js';
import type { ParsedCommand } from './framework.js';

export function requirePositionals(parsed: ParsedCommand, names: string[], usage: string, allowMore = false): string[] {
  if (parsed.positionals.length < names.length) throw usageError(`missing ${names.slice(parsed.positionals.length).join(' ')}`, usage);
  if (!allowMore && parsed.positionals.length > names.length) throw usageError(`unexpected argument ${JSON.stringify(parsed.positionals[names.length])}`, usage);
  return parsed.positionals;
}

export function stringFlag(parsed: ParsedCommand, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}
