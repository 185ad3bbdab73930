/**
 * Shell completion: `berth completion bash|zsh|fish` prints a script that asks `berth __complete
 * WORD…` for the candidates of the word being typed. All the knowledge stays here, in one pure
 * function over the verb table (verbs, subcommands, flags, flag values), plus what the server
 * can say cheaply (serials, manifests, campaign ids); the scripts only pass words and show lines.
 */
import { GLOBAL_OPTIONS, isLeaf as isCommand, type ArgKind, type LeafSpec, type OptionSpec } from './framework.js';

/** The verb table as completion sees it: a verb's declaration or a group of them (the light table, cli/verbs.ts, or commands/index.ts). */
export type VerbTable = Record<string, LeafSpec | Record<string, LeafSpec>>;
type Command = LeafSpec;

/** Printed instead of candidates when the word is a file name: each script then completes paths. */
export const FILE_DIRECTIVE = ':file';

/** The services `bin/berth.ts` runs besides the CLI's verbs. */
const SERVICES = ['control-plane', 'registry-proxy', 'edge-daemon'];
export const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** What the word at the cursor may be: fixed words, a kind the server knows, or a file. */
export type Wanted = { words: string[] } | { kind: ArgKind };

/**
 * What may be typed at the cursor, from the words before it (`berth` left out; the last word is
 * the one being typed, possibly empty). Pure: the server's lists are fetched by the caller.
 */
export function wanted(words: string[], table: VerbTable, aliases: Record<string, string>): Wanted {
  const before = words.slice(0, -1);
  const current = words[words.length - 1] ?? '';
  // Global flags may come before the verb: skip them and their values.
  let i = 0;
  while (i < before.length && before[i].startsWith('-')) i += flagOf(before[i], GLOBAL_OPTIONS)?.type === 'string' && !before[i].includes('=') ? 2 : 1;
  if (i >= before.length) {
    if (i > before.length) return valueOf(before[before.length - 1], GLOBAL_OPTIONS);
    return current.startsWith('-') ? { words: flagWords(GLOBAL_OPTIONS) } : { words: [...new Set([...visible(table), 'help', ...SERVICES])] };
  }
  const verbWord = before[i];
  if (verbWord === 'help') return helpWords(before.slice(i + 1), table, aliases);
  if (verbWord === 'completion') return before.length === i + 1 ? { words: [...SHELLS] } : { words: [] };
  const verb = table[aliases[verbWord] ?? verbWord];
  if (!verb) return { words: [] };
  let command: Command;
  let rest: string[];
  if (isCommand(verb)) {
    command = verb;
    rest = before.slice(i + 1);
  } else {
    if (before.length === i + 1) return { words: Object.keys(verb) };
    const sub = verb[before[i + 1]];
    if (!sub) return { words: [] };
    command = sub;
    rest = before.slice(i + 2);
  }
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  // The value of a flag that takes one.
  const last = rest[rest.length - 1];
  if (last !== undefined && last.startsWith('-') && !last.includes('=') && flagOf(last, options)?.type === 'string') return valueOf(last, options);
  if (current.startsWith('-')) return { words: flagWords(options) };
  const kinds = command.args ?? [];
  if (!kinds.length) return { words: [] };
  const position = positionals(rest, options).length;
  return { kind: kinds[Math.min(position, kinds.length - 1)] };
}

/** The verbs people type (not `__complete`). */
function visible(table: VerbTable): string[] {
  return Object.keys(table).filter((k) => { const v = table[k]; return !(isCommand(v) && v.hidden); });
}

function helpWords(after: string[], table: VerbTable, aliases: Record<string, string>): Wanted {
  if (after.length === 0) return { words: visible(table) };
  const verb = table[aliases[after[0]] ?? after[0]];
  return after.length === 1 && verb && !isCommand(verb) ? { words: Object.keys(verb) } : { words: [] };
}

function flagOf(word: string, options: Record<string, OptionSpec>): OptionSpec | undefined {
  const name = word.split('=')[0];
  if (name.startsWith('--')) return options[name.slice(2)];
  return Object.values(options).find((o) => o.short !== undefined && `-${o.short}` === name);
}

function valueOf(flag: string, options: Record<string, OptionSpec>): Wanted {
  const o = flagOf(flag, options);
  if (!o) return { words: [] };
  if (o.choices) return { words: [...o.choices] };
  return o.complete ? { kind: o.complete } : { words: [] };
}

function flagWords(options: Record<string, OptionSpec>): string[] {
  return [...Object.entries(options).filter(([, o]) => !o.hidden).map(([k]) => `--${k}`), '--help'];
}

/** The positionals among words (flags and their values left out). */
function positionals(words: string[], options: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w.startsWith('-') && w !== '-') {
      if (!w.includes('=') && flagOf(w, options)?.type === 'string') i++;
    } else out.push(w);
  }
  return out;
}

/**
 * Where serials start with `prefix` in the server's serial order: just before the first of them,
 * so one short page holds the matches (devices are listed `after` a serial). Serials are ASCII
 * up to `~`, so the prefix with its last character lowered, then `~`, sorts below every match.
 */
export function serialsAfter(prefix: string): string | undefined {
  if (!prefix) return undefined;
  const last = prefix.charCodeAt(prefix.length - 1);
  return last <= 0x21 ? undefined : `${prefix.slice(0, -1)}${String.fromCharCode(last - 1)}~`;
}

/** The candidates for the cursor's word; `lookup` asks the server (and fails silent) for kinds it knows. */
export async function candidates(words: string[], table: VerbTable, aliases: Record<string, string>, lookup: (kind: ArgKind, prefix: string) => Promise<string[]>): Promise<string[]> {
  const current = words[words.length - 1] ?? '';
  const w = wanted(words, table, aliases);
  if ('words' in w) return w.words.filter((x) => x.startsWith(current));
  if (w.kind === 'file') return [FILE_DIRECTIVE];
  if (w.kind === 'none') return [];
  return (await lookup(w.kind, current)).filter((x) => x.startsWith(current));
}

/** The script for a shell: it sends the words typed so far to `berth __complete` and shows what comes back. */
export function completionScript(shell: (typeof SHELLS)[number]): string {
  if (shell === 'bash') {
    return `# berth completion for bash: source <(berth completion bash)
_berth() {
  local IFS=$'\\n' line
  local -a lines
  COMPREPLY=()
  lines=($(berth __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
  [[ "\${lines[0]}" == "${FILE_DIRECTIVE}" ]] && return 0
  for line in "\${lines[@]}"; do COMPREPLY+=("$line"); done
}
complete -o default -F _berth berth
`;
  }
  if (shell === 'zsh') {
    return `#compdef berth
# berth completion for zsh: source <(berth completion zsh)
_berth() {
  local -a lines
  lines=("\${(@f)$(berth __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if [[ "\${lines[1]}" == "${FILE_DIRECTIVE}" ]]; then _files; return; fi
  lines=(\${lines:#})
  (( \${#lines} )) && compadd -- "\${lines[@]}"
}
if (( $+functions[compdef] )); then compdef _berth berth; fi
`;
  }
  return `# berth completion for fish: berth completion fish | source
function __berth_complete
    set -l words (commandline -opc)[2..-1] (commandline -ct)
    set -l lines (berth __complete -- $words 2>/dev/null)
    if test "$lines[1]" = "${FILE_DIRECTIVE}"
        __fish_complete_path (commandline -ct)
    else
        printf '%s\\n' $lines
    end
end
complete -c berth -f -a '(__berth_complete)'
`;
}
