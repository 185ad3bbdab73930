import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { requirePositionals } from '../args.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';
import { deviceLogRoutes, LOG_BYTES_CAP, LOG_REQUESTS_PER_DEVICE, LOG_TAIL_DEFAULT, logEnd, logLine } from '../../protocol/device-logs.js';
import { LineBuffer } from '../../common/lines.js';

/**
 * `berth logs SERIAL [SERVICE]`: a gateway's container logs, relayed by the control plane, never
 * stored there. `--save FILE` keeps a copy on the operator's side only.
 */
export const logs: Command = {
  usage: 'berth logs SERIAL [SERVICE] [--tail N] [--since 10m] [-f] [--save FILE]',
  about: "a gateway's container logs (release-manager or admin; audited): asked over the gateway's own control channel, relayed, never stored",
  help: `Lines print as SERVICE | LINE; with --output json, one JSON object per line ({service, stream, line}).
At most ${LOG_REQUESTS_PER_DEVICE} requests per gateway at once, ${LOG_BYTES_CAP >> 20} MiB per request.`,
  options: {
    tail: { type: 'string', value: 'N', default: `${LOG_TAIL_DEFAULT} unless --since is given`, description: 'the last N lines of each container' },
    since: { type: 'string', value: 'DUR', description: 'lines from the last DUR (30s, 10m, 2h, 1d)' },
    follow: { type: 'boolean', short: 'f', description: 'keep streaming new lines until interrupted (the gateway stops within seconds after)' },
    save: { type: 'string', value: 'FILE', complete: 'file', description: 'also write every line to FILE as NDJSON; created new with mode 0600 (logs can hold secrets), an existing FILE is refused' },
  },
  args: ['serial', 'none'],
  examples: ['berth logs gw-0042', 'berth logs gw-0042 web --since 10m -f', 'berth logs gw-0042 --tail 500 --save gw-0042.ndjson'],
  async run({ io, args, usage, client }) {
    if (args.positionals.length > 2) throw new CliError(`unexpected argument ${JSON.stringify(args.positionals[2])}`, `usage: ${usage}`, 2);
    const [serial, service] = requirePositionals(args, ['SERIAL'], usage, true);
    const tail = typeof args.values.tail === 'string' ? args.values.tail : undefined;
    if (tail !== undefined && !/^\d+$/.test(tail)) throw new CliError(`--tail ${tail}: a number of lines`, `usage: ${usage}`, 2);
    const since = typeof args.values.since === 'string' ? args.values.since : undefined;
    if (since !== undefined && !/^\d+(s|m|h|d)$/.test(since)) throw new CliError(`--since ${since}: a duration such as 30s, 10m, 2h, 1d`, `usage: ${usage}`, 2);
    const follow = args.values.follow === true;
    const savePath = typeof args.values.save === 'string' ? args.values.save : null;
    const save = savePath !== null ? openSave(savePath) : null;
    let saved = 0;
    let asked = false;
    const ctrl = new AbortController();
    const onSignal = () => ctrl.abort();
    process.once('SIGINT', onSignal);
    try {
      const body = await (await client()).stream('logs', deviceLogRoutes.read, { serial }, { service, tail, since, follow: follow ? 'true' : undefined }, ctrl.signal);
      asked = true;
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      const lines = new LineBuffer();
      let ended: string | null = null;
      for (;;) {
        const { value, done } = await reader.read().catch((err: unknown) => {
          if (ctrl.signal.aborted) return { value: undefined, done: true };
          throw err;
        });
        if (done || value === undefined) break;
        for (const raw of lines.push(value)) {
          if (!raw) continue;
          const json: unknown = JSON.parse(raw);
          const line = logLine.safeParse(json);
          if (line.success) {
            const { service: svc, stream, line: text } = line.data;
            if (save !== null) {
              writeSync(save, `${JSON.stringify({ service: svc, stream, line: text })}\n`);
              saved++;
            }
            io.out(args.output === 'json' ? JSON.stringify(line.data) : `${svc} | ${text}`);
          }
          else if (logEnd.safeParse(json).success) ended = (json as { end: string }).end;
        }
      }
      if (ended) {
        io.err(`logs ended: ${ended}`);
        return 1;
      }
      return 0;
    } finally {
      process.off('SIGINT', onSignal);
      if (save !== null) closeSync(save);
      // A refused request (unknown serial, no right to read) leaves no empty file behind.
      if (savePath !== null && !asked && saved === 0) unlinkSync(savePath);
    }
  },
};

/**
 * The --save file, opened before anything is asked of the gateway: created new (O_EXCL, so neither
 * an existing file nor a planted symlink is written through) and 0600 from the start.
 */
function openSave(path: string): number {
  if (!path) throw new CliError('--save: a file name', 'usage: berth logs SERIAL --save FILE', 2);
  try {
    return openSync(path, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`--save ${path}: the file exists; berth logs writes only new files`, 'choose another name or remove it first', 2);
    throw new CliError(`--save ${path}: cannot create it (${code ?? (err as Error).message})`);
  }
}
