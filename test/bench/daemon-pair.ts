import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyboxLayer, forgeImage, type ForgedImage } from '../rig/forge.js';
import { benchRig, MiB, removeDeviceContainers, removeImages, runsRelease, waitUntil } from './engine.js';
import { gatewayCommand } from './daemon-entry.js';
import { addGateways, deviceIdOf, startFleetServer } from './fleet.js';
import { memoryOf, scratchDir, spawnNode, type Child } from './proc.js';
import { operator, publish } from './services.js';

/**
 * Several edge daemons side by side on one rig (issue 11): each its own gateway and its own build's
 * `bin/berth.js` (run as a gateway runs it: daemon-entry.ts), all given the same 5-service release;
 * once every one runs it, the RSS of each is sampled every 5 s. Same machine, same minutes, so a step's effect on the idle figure shows
 * against the noise between two daemons of the same build (list a build twice). A tool for
 * edge-daemon/README.md's Footprint steps, not a `npm run bench` entry (daemon-footprint is).
 *
 *   node dist/test/bench/daemon-pair.js LABEL:PATH/TO/dist/bin/berth.js[:VAR=value...] ...
 *   (SAMPLES=n, default 8; VAR=value pairs go to that daemon's environment)
 */

interface Variant {
  label: string;
  bin: string;
  env: Record<string, string>;
}

function variantOf(arg: string): Variant {
  const [label, bin, ...env] = arg.split(':');
  if (!label || !bin?.endsWith('.js')) throw new Error(`${arg}: expected LABEL:PATH/TO/bin/berth.js[:VAR=value...]`);
  return { label, bin, env: Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) };
}

async function main(variants: Variant[], samples: number): Promise<void> {
  const r = await benchRig();
  const dir = scratchDir('daemon-pair');
  const run = `${process.pid}-${Date.now().toString(36)}`;
  const server = await startFleetServer(dir.dir, r.rig, []);
  const images: ForgedImage[] = [];
  const ids: string[] = [];
  const daemons: Child[] = [];
  try {
    const busybox = busyboxLayer();
    const lines = ['name: pair', 'version: 1.0.0', 'services:'];
    const names: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const img = await forgeImage(r.rig.registry, `bench/pair-svc${i}-${run}`, '1', { layers: [busybox, { files: { '/svc/name': `svc${i}\n`, '/svc/run': `${run}\n` } }], config: { Cmd: ['sleep', '86400'] } });
      images.push(img);
      names.push(`svc${i}`);
      lines.push(`  svc${i}:`, `    image: ${img.tagReference}`, '    network_mode: none');
    }
    const release = await publish(server.cp, lines.join('\n') + '\n');
    const gateways = await addGateways(server, dir.dir, `pair${process.pid}`, variants.length, 'role=pair');
    for (const [i, v] of variants.entries()) {
      const gw = gateways[i];
      ids.push(await deviceIdOf(server, gw.serial));
      const flags = ['--control-plane', server.cp.url, '--state-dir', join(dir.dir, 'gateways', gw.serial, 'state'), '--serial', gw.serial, '--key', gw.keyFile, '--docker-host', r.rig.dockerHost];
      const gateway = gatewayCommand(v.bin, flags);
      daemons.push(spawnNode(gateway.script, gateway.args, { logFile: join(dir.dir, `daemon-${i}.log`), env: v.env }));
      await operator(server.cp, 'POST', `/v1/devices/${gw.serial}/assign`, { json: { manifest: release } });
    }
    for (const [i, gw] of gateways.entries()) await waitUntil(`${gw.serial} (${variants[i].label}) running ${release}`, () => runsRelease(r.docker, ids[i], release, 5, names), 180_000);
    await sleep(5000);
    const rows = variants.map(() => [] as ReturnType<typeof memoryOf>[]);
    for (let s = 0; s < samples; s++) {
      for (const [i, d] of daemons.entries()) rows[i].push(memoryOf(d.pid));
      await sleep(5000);
    }
    const f = (x: number): string => (x / MiB).toFixed(1);
    for (const [i, v] of variants.entries()) {
      const rss = rows[i].map((m) => m.rss).sort((a, b) => a - b);
      const last = rows[i][rows[i].length - 1];
      // A stale bundle makes the daemon run the compiled modules (bin/gateway-bundle.ts): 3–5 MiB more, not the build's figure.
      const stale = readFileSync(join(dir.dir, `daemon-${i}.log`), 'utf8').includes('running the compiled modules') ? ' (STALE BUNDLE: ran the compiled modules)' : '';
      console.log(`${v.label.padEnd(16)} RSS median ${f(rss[rss.length >> 1])} (${f(rss[0])}–${f(rss[rss.length - 1])}) MiB; last ${f(last.anon)} anonymous + ${f(last.file)} file-backed${stale}`);
    }
  } finally {
    for (const d of daemons) await d.stop(15_000);
    await removeDeviceContainers(r.docker, ids);
    await removeImages(r.docker, images.map((i) => i.configDigest));
    await server.stop();
    dir.remove();
  }
}

main(process.argv.slice(2).map(variantOf), Number(process.env.SAMPLES ?? 8)).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`daemon-pair: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
