import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyboxLayer, forgeImage, pseudoRandomBytes, variant, type ForgedImage, type LayerSpec } from '../rig/forge.js';
import { benchRig, MiB, removeDeviceContainers, removeImages, runsRelease, waitUntil } from './engine.js';
import { addGateways, deviceIdOf, startFleetServer } from './fleet.js';
import { cpuSecondsOf, memoryOf, sampleMemory, scratchDir } from './proc.js';
import { operator, publish, startDaemonProcess } from './services.js';
import { stat, type Bench, type BenchOptions, type BenchRow } from './stats.js';

/**
 * The edge daemon's footprint as a gateway runs it (compiled JS on plain Node, its own process):
 * RSS and CPU while idle with a 5-service release running (CPU from /proc/<pid>/stat over idle
 * windows), and peak RSS (VmHWM, reset just before) while a release with a 200 MB layer is
 * downloaded, handed to the engine and started, and while the next release's version of that layer
 * comes as a delta and is rebuilt. Baseline: the issues' targets.
 */

const TARGET = { idleRssMiB: 50, idleCpuPercent: 1, downloadRssMiB: 80 };

function manifest(version: string, services: Record<string, ForgedImage>): string {
  const lines = ['name: footprint', `version: ${version}`, 'services:'];
  for (const [name, img] of Object.entries(services)) lines.push(`  ${name}:`, `    image: ${img.tagReference}`, '    network_mode: none');
  return lines.join('\n') + '\n';
}

/** RSS of a bare Node process doing nothing: what the runtime alone costs on this machine. */
async function bareNodeRss(): Promise<number> {
  const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await sleep(1500);
  const rss = memoryOf(p.pid as number).rss;
  p.kill('SIGKILL');
  return rss;
}

/**
 * BERTH_BENCH_DAEMON_BEFORE=<another build's dist/bin/berth.js>: the same measurement runs first
 * with that build's daemon, then with this one, in one run (same machine, same minutes), and the
 * rows of each say which build they measured. Without it, only this build (or
 * BERTH_BENCH_DAEMON_BIN's) is measured.
 */
export const bench: Bench = {
  name: 'daemon-footprint',
  title: 'Edge daemon footprint: idle with 5 services, peak while downloading 200 MB',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    const before = process.env.BERTH_BENCH_DAEMON_BEFORE;
    if (!before) return measure(opts);
    const saved = process.env.BERTH_BENCH_DAEMON_BIN;
    let rowsBefore: BenchRow[];
    try {
      // services.ts spawns the daemon from this variable when set.
      process.env.BERTH_BENCH_DAEMON_BIN = before;
      opts.log(`daemon-footprint: the build before (${before}) first`);
      rowsBefore = await measure(opts);
    } finally {
      if (saved === undefined) delete process.env.BERTH_BENCH_DAEMON_BIN;
      else process.env.BERTH_BENCH_DAEMON_BIN = saved;
    }
    opts.log('daemon-footprint: then this build');
    const rowsAfter = await measure(opts);
    return [...rowsBefore.map((r) => ({ ...r, metric: `${r.metric} (build before: ${before})` })), ...rowsAfter];
  },
};

async function measure({ quick, log }: BenchOptions): Promise<BenchRow[]> {
  const r = await benchRig();
  const dir = scratchDir('footprint');
  const run = `${process.pid}-${Date.now().toString(36)}`;
  const bigBytes = quick ? 20 * MiB : 200 * MiB;
  // 2 windows since 2026-11-29 16:30 (were 3; the full bench's 25 min, issue 17): the idle RSS of
  // the 3 was the same to 0.1 MiB in every full run of that day (51.1-51.2, 58.5 x3). Each stays
  // 10 s, so it spans the daemon's heartbeats and most of a 15 s reconcile tick.
  const windows = quick ? 3 : 2;
  const windowMs = quick ? 3000 : 10_000;
  const server = await startFleetServer(dir.dir, r.rig, []);
  const images: ForgedImage[] = [];
  let deviceId = '';
  let daemon: ReturnType<typeof startDaemonProcess> | undefined;
  try {
    const busybox = busyboxLayer();
    const services: Record<string, ForgedImage> = {};
    for (let i = 1; i <= 5; i++) {
      services[`svc${i}`] = await forgeImage(r.rig.registry, `bench/footprint-svc${i}-${run}`, '1', { layers: [busybox, { files: { '/svc/name': `svc${i}\n`, '/svc/run': `${run}\n` } }], config: { Cmd: ['sleep', '86400'] } });
    }
    // The data layer is files of 2 MB, as a rootfs or an app is: version 2 patches two of them
    // and adds one, so the update to it goes as a layer delta.
    const dataLayer: LayerSpec = { files: {} };
    for (let i = 0; i < bigBytes / (2 * MiB); i++) dataLayer.files[`/data/part-${i}.bin`] = pseudoRandomBytes(2 * MiB, `${run}:footprint:${i}`);
    let dataLayer2 = variant(dataLayer, { path: '/data/part-1.bin', bytes: 4096, seed: `${run}:a` });
    dataLayer2 = variant(dataLayer2, { path: '/data/part-5.bin', bytes: 4096, seed: `${run}:b` });
    dataLayer2 = variant(dataLayer2, { path: '/data/new.bin', bytes: 256 * 1024, seed: `${run}:c` });
    const big = await forgeImage(r.rig.registry, `bench/footprint-data-${run}`, '1', { layers: [busybox, dataLayer], config: { Cmd: ['sleep', '86400'] } });
    const big2 = await forgeImage(r.rig.registry, `bench/footprint-data-${run}`, '2', { layers: [busybox, dataLayer2], config: { Cmd: ['sleep', '86400'] } });
    images.push(...Object.values(services), big, big2);
    const v1 = await publish(server.cp, manifest('1.0.0', services));
    const v2 = await publish(server.cp, manifest('2.0.0', { ...services, data: big }));
    const v3 = await publish(server.cp, manifest('3.0.0', { ...services, data: big2 }));

    const [gw] = await addGateways(server, dir.dir, `fp${process.pid}`, 1, 'role=footprint');
    deviceId = await deviceIdOf(server, gw.serial);
    daemon = startDaemonProcess(dir.dir, { controlPlane: server.cp.url, serial: gw.serial, keyFile: gw.keyFile, dockerHost: r.rig.dockerHost });
    await operator(server.cp, 'POST', `/v1/devices/${gw.serial}/assign`, { json: { manifest: v1 } });
    await waitUntil(`${gw.serial} running ${v1}`, () => runsRelease(r.docker, deviceId, v1, 5, Object.keys(services)), quick ? 60_000 : 180_000);
    log(`daemon-footprint: ${v1} running (5 services); settling, then ${windows} idle windows of ${windowMs / 1000} s`);
    await sleep(quick ? 2000 : 5000);

    const pid = daemon.child.pid;
    const cpu: number[] = [];
    const rss: number[] = [];
    let split = { anon: 0, file: 0 };
    for (let i = 0; i < windows; i++) {
      const c0 = cpuSecondsOf(pid);
      const t0 = performance.now();
      await sleep(windowMs);
      cpu.push(((cpuSecondsOf(pid) - c0) / ((performance.now() - t0) / 1000)) * 100);
      const m = memoryOf(pid);
      rss.push(m.rss / MiB);
      split = { anon: m.anon / MiB, file: m.file / MiB };
    }
    log(`daemon-footprint idle: RSS ${rss.map((x) => x.toFixed(1)).join(', ')} MiB (last: ${split.anon.toFixed(1)} anonymous, ${split.file.toFixed(1)} file-backed), CPU ${cpu.map((x) => x.toFixed(2)).join(', ')} %`);

    // Writing 5 to clear_refs resets VmHWM, so each peak below belongs to its update alone.
    const update = async (release: string): Promise<{ seconds: number; hwm: number; cpu: number }> => {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
      const sampler = sampleMemory(pid, 50);
      const c0 = cpuSecondsOf(pid);
      const t0 = performance.now();
      await operator(server.cp, 'POST', `/v1/devices/${gw.serial}/assign`, { json: { manifest: release } });
      await waitUntil(`${gw.serial} running ${release}`, () => runsRelease(r.docker, deviceId, release, 6, ['data']), 300_000);
      return { seconds: (performance.now() - t0) / 1000, hwm: sampler.stop().hwm, cpu: cpuSecondsOf(pid) - c0 };
    };
    const { seconds, hwm, cpu: cpuFull } = await update(v2);
    const peak = { hwm };
    log(`daemon-footprint: ${v2} (+${(big.layers[1].size / 1e6).toFixed(0)} MB layer) running after ${seconds.toFixed(1)} s; VmHWM ${(peak.hwm / MiB).toFixed(1)} MiB; daemon CPU ${cpuFull.toFixed(2)} s`);

    // The same, for an update whose changed layer comes as a delta rebuilt against the one above.
    const { seconds: deltaSeconds, hwm: deltaHwm, cpu: cpuDelta } = await update(v3);
    const deltaPeak = { hwm: deltaHwm };
    const twin = (await operator(server.cp, 'GET', `/v1/devices/${gw.serial}`)) as { reported: { bytes: { done: number; full?: number; delta?: boolean } } };
    const moved = twin.reported.bytes;
    log(`daemon-footprint: ${v3} by ${moved.delta ? 'delta' : 'full layer'} (${(moved.done / 1e6).toFixed(2)} MB of ${((moved.full ?? 0) / 1e6).toFixed(0)} MB) running after ${deltaSeconds.toFixed(1)} s; VmHWM ${(deltaPeak.hwm / MiB).toFixed(1)} MiB; daemon CPU ${cpuDelta.toFixed(2)} s`);
    if (!moved.delta) throw new Error(`daemon-footprint: the update to ${v3} did not go as a delta: ${JSON.stringify(moved)}`);
    const bare = (await bareNodeRss()) / MiB;
    const size = `${(big.layers[1].size / 1e6).toFixed(0)} MB`;
    return [
      { bench: 'daemon-footprint', metric: 'idle RSS, 5-service release running', unit: 'MiB', berth: stat(rss), baseline: { name: 'target (issue 5)', value: stat([TARGET.idleRssMiB]) }, ratio: stat(rss).median / TARGET.idleRssMiB, note: `VmRSS at the end of ${windows} idle windows of ${windowMs / 1000} s (3 until 2026-11-29 16:30; the last: ${split.anon.toFixed(1)} MiB anonymous, ${split.file.toFixed(1)} MiB file-backed, mostly the node binary's pages, which the kernel may reclaim from an idle process); a bare Node ${process.version} process idles at ${bare.toFixed(1)} MiB here` },
      { bench: 'daemon-footprint', metric: 'idle CPU, 5-service release running', unit: '% of a core', berth: stat(cpu), baseline: { name: 'target (issue 5)', value: stat([TARGET.idleCpuPercent]) }, ratio: stat(cpu).median / TARGET.idleCpuPercent, note: `utime+stime from /proc/<pid>/stat over each ${windowMs / 1000} s window (long-poll open, heartbeats, reconcile ticks)` },
      { bench: 'daemon-footprint', metric: `peak RSS, delta update of a ${size} layer`, unit: 'MiB', berth: stat([deltaPeak.hwm / MiB]), baseline: { name: 'target (issue 11)', value: stat([TARGET.downloadRssMiB]) }, ratio: deltaPeak.hwm / MiB / TARGET.downloadRssMiB, note: `VmHWM (reset before the assignment) over the plan, ${(moved.done / 1e6).toFixed(2)} MB of delta, the rebuild against the layer in the store, verification, handover and start; one run, ${deltaSeconds.toFixed(1)} s from assignment to running, ${cpuDelta.toFixed(1)} s of daemon CPU` },
      { bench: 'daemon-footprint', metric: `peak RSS, update downloading a ${size} layer`, unit: 'MiB', berth: stat([peak.hwm / MiB]), baseline: { name: 'target (issue 5)', value: stat([TARGET.downloadRssMiB]) }, ratio: peak.hwm / MiB / TARGET.downloadRssMiB, note: `VmHWM (reset before the assignment) over download, verification, handover to the engine and start; one run, ${seconds.toFixed(1)} s from assignment to running, ${cpuFull.toFixed(1)} s of daemon CPU` },
    ];
  } finally {
    await daemon?.stop();
    if (deviceId) await removeDeviceContainers(r.docker, [deviceId]);
    await removeImages(r.docker, images.map((i) => i.configDigest));
    await server.stop();
    dir.remove();
  }
}
