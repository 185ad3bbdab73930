import { requirePositionals } from '../args.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';
import { deviceLogRoutes, logEnd, logLine } from '../../protocol/device-logs.js';

/** `berth logs SERIAL [SERVICE]`: a gateway's container logs, relayed by the control plane, never stored. */
export const logs: Command = {
  usage: 'berth logs SERIAL [SERVICE] [--tail N] [--since 10m] [-f]',
  about: "a gateway's container logs (release-manager or admin; audited): asked over the gateway's own control channel, relayed, never stored",
  help: `  --tail N      the last N lines of each container (default 100 when neither --tail nor --since is given)
  --since D     lines from the last D (30s, 10m, 2h, 1d)
  -f, --follow  keep streaming new lines until interrupted (the gateway stops within seconds after)
  Lines print as SERVICE | LINE; with --output json, one JSON object per line ({service, stream, line}).
  At most 3 requests per gateway at once, 4 MiB per request.`,
  options: { tail: { type: 'string' }, since: { type: 'string' }, follow: { type: 'boolean', short: 'f' } },
  async run({ io, args, usage, client }) {
    if (args.positionals.length > 2) throw new CliError(`unexpected argument ${JSON.stringify(args.positionals[2])}`, `usage: ${usage}`, 2);
    const [serial, service] = requirePositionals(args, ['SERIAL'], usage, true);
    const tail = typeof args.values.tail === 'string' ? args.values.tail : undefined;
    if (tail !== undefined && !/^\d+$/.test(tail)) throw new CliError(`--tail ${tail}: a number of lines`, `usage: ${usage}`, 2);
    const since = typeof args.values.since === 'string' ? args.values.since : undefined;
    if (since !== undefined && !/^\d+(s|m|h|d)$/.test(since)) throw new CliError(`--since ${since}: a duration such as 30s, 10m, 2h, 1d`, `usage: ${usage}`, 2);
    const follow = args.values.follow === true;
    const ctrl = new AbortController();
    const onSignal = () => ctrl.abort();
    process.once('SIGINT', onSignal);
    try {
      const body = await (await client()).stream('logs', deviceLogRoutes.read, { serial }, { service, tail, since, follow: follow ? 'true' : undefined }, ctrl.signal);
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let ended: string | null = null;
      for (;;) {
        const { value, done } = await reader.read().catch((err: unknown) => {
          if (ctrl.signal.aborted) return { value: undefined, done: true };
          throw err;
        });
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const raw = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!raw) continue;
          const json: unknown = JSON.parse(raw);
          const line = logLine.safeParse(json);
          if (line.success) io.out(args.output === 'json' ? JSON.stringify(line.data) : `${line.data.service} | ${line.data.line}`);
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
    }
  },
};
