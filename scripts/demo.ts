/**
 * `npm run demo`: the whole loop on one machine, told as a story. A local registry with demo images
 * built from busybox, the control plane on an embedded database, the registry proxy, and three
 * gateways (three edge daemons sharing one Docker engine). The release manager imports the
 * manufacturing records, publishes v1 and rolls it out, rolls v2 out in waves, then publishes a
 * v3 whose health check fails and watches the campaign stop and roll back.
 *
 * The engine: DOCKER_HOST=unix:///… when given; otherwise, as root on Debian, a private dockerd
 * (and registry) from the test rig; otherwise the system engine's socket. Everything the demo
 * starts is stopped and removed at the end, unless --keep, which leaves it running until Ctrl-C.
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import type { Campaign } from '../cli/client.js';
import { shortDigest } from '../cli/format.js';
import { Fleet, forgeDemoImages, waitFor, writeDemoManifest, type DemoImages } from '../test/integration/fleet.js';
import { startRegistry, startRig, stopRig, type Rig } from '../test/rig/index.js';

const SERIALS = ['gw-1', 'gw-2', 'gw-3'];
const USAGE = `usage: npm run demo [-- --keep]

Runs Berth end to end on this machine: a local registry, the control plane, the registry proxy and
three gateways on one Docker engine, then three rollouts (the last one fails and is rolled back).

  --keep    leave everything running after the story (until Ctrl-C) to look around with the CLI
  --debug   print the stack trace when the demo fails

The Docker engine: DOCKER_HOST=unix:///path/docker.sock if set; else, as root with Debian's docker.io,
a private dockerd under a temp dir; else the system engine at /var/run/docker.sock. Debian's
docker-registry and busybox-static packages provide the local registry and the demo images.`;

interface Engine {
  dockerHost: string;
  registry: string;
  registryUrl: string;
  /** What to say about where the engine comes from. */
  origin: string;
  stop(): Promise<void>;
}

/** The story's voice: numbered steps, commands as typed, their output indented. */
class Narrator {
  private step = 0;
  private readonly started = Date.now();
  constructor(private readonly tty: boolean) {}

  private bold(s: string): string {
    return this.tty && !process.env.NO_COLOR ? `\x1b[1m${s}\x1b[0m` : s;
  }
  elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(0)}s`;
  }
  title(text: string): void {
    this.step++;
    console.log(`\n${this.bold(`${this.step}. ${text}`)}  ${this.tty ? '\x1b[2m' : ''}(${this.elapsed()})${this.tty ? '\x1b[0m' : ''}`);
  }
  say(text: string): void {
    console.log(`   ${text}`);
  }
  command(argv: string[]): void {
    console.log(`   $ berth ${argv.map((a) => (/[\s'"*|&;()<>]/.test(a) ? `'${a}'` : a)).join(' ')}`);
  }
  /** Indents command output; a redraw (cursor-up escape) keeps its escape ahead of the indent. */
  output = (text: string): void => {
    const m = /^(\x1b\[\d+A\r\x1b\[J)?([\s\S]*)$/.exec(text);
    const escape = m?.[1] ?? '';
    const body = (m?.[2] ?? text).split('\n').map((l) => `     ${l}`).join('\n');
    process.stdout.write(`${escape}${body}\n`);
  };
}

/** What the machine lacks for the demo, as Debian packages to install; empty when all is there. */
function missingPackages(): string[] {
  const need: [string, string][] = [
    [process.env.BERTH_RIG_REGISTRY_BIN ?? '/usr/bin/docker-registry', 'docker-registry'],
    [process.env.BERTH_BUSYBOX ?? '/usr/bin/busybox', 'busybox-static'],
  ];
  return need.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg);
}

const SYSTEM_SOCKET = '/var/run/docker.sock';

async function engineAnswers(socketPath: string): Promise<boolean> {
  return new Docker({ socketPath }).ping().then(() => true, () => false);
}

/** An engine that already runs (DOCKER_HOST, or the system's), with a private registry next to it. */
async function useEngine(dockerHost: string, origin: string): Promise<Engine> {
  const registry = await startRegistry();
  return { dockerHost, registry: registry.registry, registryUrl: registry.registryUrl, origin, stop: () => registry.stop() };
}

/**
 * Which engine: DOCKER_HOST when set; else, as root with Debian's docker.io, a private dockerd
 * (the rig: own data root, no bridge, no iptables), so a system engine is left untouched; else
 * the system engine's socket when it answers.
 */
async function startEngine(): Promise<Engine> {
  const given = process.env.DOCKER_HOST;
  const root = process.getuid?.() === 0;
  const privateEngine = !given && root && existsSync(process.env.BERTH_RIG_DOCKERD_BIN ?? '/usr/sbin/dockerd');
  const missing = missingPackages();
  if (missing.length) {
    throw new Error(`the demo needs Debian's ${missing.join(', ')} (apt-get install ${missing.join(' ')}): it builds its images from busybox and runs its own registry`);
  }
  if (given) {
    if (!given.startsWith('unix://')) throw new Error(`DOCKER_HOST=${given}: the demo talks to a local engine over its unix socket (unix:///var/run/docker.sock)`);
    if (!(await engineAnswers(given.slice('unix://'.length)))) throw new Error(`DOCKER_HOST=${given}: the engine does not answer; start it, or unset DOCKER_HOST`);
    return useEngine(given, `the Docker engine at ${given}`);
  }
  if (privateEngine) {
    const rig: Rig = await startRig();
    return {
      dockerHost: rig.dockerHost,
      registry: rig.registry,
      registryUrl: rig.registryUrl,
      origin: rig.startedHere ? `a private dockerd (${rig.dockerHost}) and registry started for the demo` : `the test rig's running dockerd (${rig.dockerHost})`,
      // A rig another run started (a kept test rig) is only released, never stopped.
      stop: async () => void (await stopRig(rig, { keep: !rig.startedHere })),
    };
  }
  if (await engineAnswers(SYSTEM_SOCKET)) return useEngine(`unix://${SYSTEM_SOCKET}`, `the system's Docker engine (unix://${SYSTEM_SOCKET})`);
  throw new Error(
    'the demo needs a Docker engine: set DOCKER_HOST=unix:///path/docker.sock to use a running one, or run it as root ' +
      'with Debian\'s docker.io installed (it then starts a private dockerd under a temp dir)',
  );
}

interface Story {
  fleet: Fleet;
  images: DemoImages;
  dir: string;
  engine: Engine;
  say: Narrator;
}

async function berth(s: Story, argv: string[], opts: { show?: boolean } = {}): Promise<number> {
  s.say.command(argv);
  const r = await s.fleet.cli(argv, { echo: opts.show === false ? undefined : s.say.output, tty: process.stdout.isTTY === true });
  return r.code;
}

async function mustBerth(s: Story, argv: string[]): Promise<void> {
  const code = await berth(s, argv);
  if (code !== 0) throw new Error(`berth ${argv.join(' ')} exited ${code} (service logs in ${join(s.dir, 'logs')}; run with --keep to look)`);
}

/** Creates a campaign quietly (the command is shown) and returns its id. */
async function campaign(s: Story, manifest: string, waves: string, extra: string[] = []): Promise<string> {
  const argv = ['campaign', 'create', '--manifest', manifest, '--selector', 'site=berlin', '--waves', waves, '--device-timeout', '2m', ...extra, '--start'];
  s.say.command(argv);
  const c = await s.fleet.cliJson<Campaign>(argv);
  s.say.output(`campaign ${c.id} ${c.status}: ${c.manifest} in ${c.waves.length} wave(s)`);
  return c.id;
}

async function runStory(s: Story): Promise<void> {
  const { fleet, dir, say } = s;

  say.title('Three gateways: their keys, the manufacturing records, zero-touch enrollment');
  say.say(`each gateway has an Ed25519 key; the manufacturer's records (serial, public key, labels) are in ${fleet.recordsFile}`);
  await mustBerth(s, ['devices', 'import', fleet.recordsFile]);
  say.say('each gateway runs its edge daemon; at first start it proves it holds its key, and enrolls:');
  for (const serial of SERIALS) {
    const g = await fleet.startGateway(serial);
    say.say(`  $ ${g.daemon?.command ?? `berth edge-daemon --serial ${serial} …`}   (pid ${g.daemon?.pid ?? '-'})`);
  }
  await waitFor('the gateways to enroll', async () => ((await fleet.devices()).every((d) => d.status === 'enrolled' && d.online) ? true : undefined), { timeoutMs: 60_000 });
  await mustBerth(s, ['devices', 'list']);

  say.title('Publish v1 (every image pinned to its digest) and roll it out');
  await mustBerth(s, ['apply', '-f', await writeDemoManifest(dir, s.engine.registry, '1.0.0')]);
  const first = await campaign(s, 'demo@1.0.0', '100%');
  if ((await berth(s, ['campaign', 'status', first, '--watch', '--interval', '500ms'])) !== 0) throw new Error('the v1 rollout did not complete');
  await fleet.waitForRelease(SERIALS, 'demo@1.0.0');

  say.title('Roll v2 out in waves: one gateway, then two, then all three');
  await mustBerth(s, ['apply', '-f', await writeDemoManifest(dir, s.engine.registry, '2.0.0')]);
  await mustBerth(s, ['manifests', 'diff', 'demo@1.0.0', '2.0.0']);
  const second = await campaign(s, 'demo@2.0.0', '1,2,3');
  if ((await berth(s, ['campaign', 'status', second, '--watch', '--interval', '500ms'])) !== 0) throw new Error('the v2 rollout did not complete');
  await fleet.waitForRelease(SERIALS, 'demo@2.0.0');
  say.say('the agent service did not change, so every gateway kept its agent container running.');

  say.title('Publish v3, whose health check fails: the first wave fails, the campaign aborts and rolls back');
  await mustBerth(s, ['apply', '-f', await writeDemoManifest(dir, s.engine.registry, '3.0.0', { healthTimeout: '10s' })]);
  const third = await campaign(s, 'demo@3.0.0', '1,100%', ['--max-failures', '0%', '--on-failure', 'rollback']);
  const code = await berth(s, ['campaign', 'status', third, '--watch', '--interval', '500ms']);
  if (code !== 1) throw new Error(`the v3 rollout should have failed, but the watch exited ${code}`);
  const end = await fleet.campaign(third);
  const victim = end.failing[0]?.serial;
  say.say(`the gateway in the first wave (${victim ?? '?'}) rolled back to v2 by itself; the campaign then sent it back to v2 and never gave v3 to the others.`);
  await fleet.waitForRelease(SERIALS, 'demo@2.0.0');
  if (victim) await mustBerth(s, ['devices', 'show', victim]);
}

async function summary(s: Story, keep: boolean): Promise<void> {
  const { fleet, images, say } = s;
  say.title(`Summary: what runs where`);
  const names: Record<string, string> = {
    [images.v1.configDigest]: 'app 1.0.0',
    [images.v2.configDigest]: 'app 2.0.0',
    [images.v3.configDigest]: 'app 3.0.0',
    [images.agent.configDigest]: 'agent 1.0.0',
  };
  for (const serial of SERIALS) {
    const containers = await fleet.containers(serial);
    say.say(`${serial} (device ${fleet.gateway(serial).deviceId}):`);
    for (const c of containers) say.say(`  ${c.name}  ${names[c.imageId] ?? '?'}  image ${shortDigest(c.imageId)}  ${c.state}${c.health !== 'none' ? ` (${c.health})` : ''}`);
  }
  say.say('');
  say.say(`engine:         ${s.engine.origin}`);
  say.say(`registry:       ${s.engine.registryUrl}  (the demo images)`);
  say.say(`control plane:  ${fleet.controlPlaneUrl}  (API description at ${fleet.controlPlaneUrl}/openapi.json)`);
  say.say(`registry proxy: ${fleet.proxyUrl}`);
  say.say('processes:');
  for (const svc of fleet.services()) say.say(`  ${svc.name.padEnd(20)} pid ${String(svc.pid).padEnd(8)} log ${svc.logFile}`);
  say.say('');
  if (keep) {
    say.say('It keeps running. In another terminal:');
    say.say(`  export BERTH_SERVER=${fleet.controlPlaneUrl}`);
    say.say(`  export BERTH_TOKEN=$(cat ${join(s.dir, 'admin.token')})`);
    say.say('  node dist/bin/berth.js devices list');
    say.say('  node dist/bin/berth.js devices show gw-1');
    say.say('  node dist/bin/berth.js campaign list');
    say.say('  node dist/bin/berth.js audit');
    say.say(`  DOCKER_HOST=${s.engine.dockerHost} docker ps   # the gateways' containers`);
    say.say('Press Ctrl-C to stop and clean up.');
  } else {
    say.say('To look around afterwards, run `npm run demo -- --keep`; the commands to try are printed at the end.');
  }
}

export async function demo(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { keep: { type: 'boolean' }, debug: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    console.error(`demo: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const keep = values.keep === true;
  const say = new Narrator(process.stdout.isTTY === true);
  console.log('Berth demo: a release manager, three gateways, three rollouts.');

  const cleanups: (() => Promise<void>)[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => console.error(`   cleanup: ${(err as Error).message}`));
    })();
    return cleaning;
  };
  const interrupted = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      console.log(`\n${signal}: stopping everything the demo started…`);
      void cleanup().then(() => resolve(keep ? 0 : 130));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

  const story = (async (): Promise<number> => {
    say.title('A Docker engine and a local registry with demo images built from busybox');
    const engine = await startEngine();
    cleanups.push(() => engine.stop());
    say.say(`engine: ${engine.origin}`);
    const dir = await mkdtemp(join(tmpdir(), 'berth-demo-'));
    const images = await forgeDemoImages(engine.registry);
    say.say(`pushed to ${engine.registry}: berth-demo/app 1.0.0, 2.0.0, 3.0.0 (its health check fails), berth-demo/agent 1.0.0`);

    say.title('The control plane (embedded database) and the registry proxy');
    const fleet = await Fleet.start({
      engine,
      dir,
      gateways: SERIALS.map((serial) => ({ serial, labels: { site: 'berlin' } })),
      // Every service is its own process, started the way an operator would start it.
      processes: { node: process.execPath, berth: join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'berth.js') },
    });
    cleanups.push(async () => {
      await fleet.stop({ removeDir: true });
      // The engine may be someone else's: remove the images the gateways pulled, too.
      const docker = new Docker({ socketPath: engine.dockerHost.slice('unix://'.length) });
      for (const image of [images.v1, images.v2, images.v3, images.agent]) await docker.getImage(image.configDigest).remove({ force: true }).catch(() => undefined);
    });
    await fleet.writeAdminToken(join(dir, 'admin.token'));
    for (const svc of fleet.services()) say.say(`$ ${svc.command}   (pid ${svc.pid})`);
    say.say(`control plane ${fleet.controlPlaneUrl} on an embedded database; registry proxy ${fleet.proxyUrl} in front of ${engine.registryUrl}`);
    say.say('(`berth` is `node dist/bin/berth.js`; the admin token reaches the control plane through BERTH_ADMIN_TOKEN, not the command line)');
    const s: Story = { fleet, images, dir, engine, say };
    await runStory(s);
    await summary(s, keep);
    console.log(`\nThe whole story took ${say.elapsed()}.`);
    if (keep) return interrupted;
    return 0;
  })();

  let code: number;
  try {
    code = await Promise.race([story, interrupted]);
  } catch (err) {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    if (values.debug && err instanceof Error) console.error(err.stack);
    code = 1;
  }
  await cleanup();
  return code;
}

demo(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
