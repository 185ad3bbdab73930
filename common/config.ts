/**
 * Flags with environment fallbacks: every service flag `--foo-bar` is also `BERTH_<PREFIX>_FOO_BAR`
 * (or the explicit name given), so systemd units and containers configure services without argv,
 * and secrets never need to appear on a command line.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  env?: string;
  default?: string;
  about: string;
}

export function envName(prefix: string, flag: string): string {
  return `BERTH_${prefix ? prefix + '_' : ''}${flag.replace(/-/g, '_').toUpperCase()}`;
}

export function usageOf(command: string, specs: Record<string, FlagSpec>, prefix: string): string {
  const lines = [`usage: berth ${command} [options]`, ''];
  for (const [name, s] of Object.entries(specs)) {
    const env = s.env ?? envName(prefix, name);
    lines.push(`  --${name}${s.type === 'string' ? ' VALUE' : ''}`.padEnd(34) + `${s.about} [env ${env}]${s.default ? ` (default ${s.default})` : ''}`);
  }
  return lines.join('\n');
}

/** Parses argv; a flag wins over its environment variable, which wins over the default. */
export function parseFlags(argv: string[], specs: Record<string, FlagSpec>, prefix: string) {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, s] of Object.entries(specs)) options[name] = { type: s.type, multiple: s.multiple === true };
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const out: Record<string, string | string[] | boolean | undefined> = {};
  for (const [name, s] of Object.entries(specs)) {
    const env = process.env[s.env ?? envName(prefix, name)];
    let v = values[name] as string | string[] | boolean | undefined;
    if (v === undefined && env !== undefined && env !== '') {
      v = s.type === 'boolean' ? ['1', 'true', 'yes'].includes(env.toLowerCase()) : s.multiple ? env.split(/[\s,]+/).filter(Boolean) : env;
    }
    if (v === undefined && s.default !== undefined) v = s.default;
    out[name] = v;
  }
  return { flags: out, positionals, help: values.help === true };
}
