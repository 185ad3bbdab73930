import { pseudoRandomBytes, type LayerSpec } from '../rig/forge.js';

/** Text a shipped app has plenty of (configs, scripts, docs): compresses like real files do. */
function textFile(seed: string, lines: number): string {
  const words = ['service', 'gateway', 'sensor', 'value', 'config', 'release', 'update', 'layer', 'device', 'metric'];
  const rnd = pseudoRandomBytes(lines * 6, seed);
  let out = '';
  for (let i = 0; i < lines; i++) out += `${words[rnd[i * 6] % 10]}_${rnd[i * 6 + 1]} = ${words[rnd[i * 6 + 2] % 10]} ${rnd.readUInt16LE(i * 6 + 3)}\n`;
  return out;
}

/**
 * A rootfs-like layer: 300 files (text and binaries, about 5 MB). Version 2 changes a few: two
 * binaries patched in place, one config rewritten, one library added, as a routine upgrade does.
 */
export function appLayer(seed: string, version: 1 | 2): LayerSpec {
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < 240; i++) files[`/usr/share/app/doc-${i}.txt`] = textFile(`${seed}:doc:${i}`, 80);
  for (let i = 0; i < 60; i++) files[`/usr/lib/app/lib${i}.so`] = pseudoRandomBytes(60_000, `${seed}:lib:${i}`);
  if (version === 2) {
    for (const i of [3, 17]) {
      const b = Buffer.from(files[`/usr/lib/app/lib${i}.so`] as Buffer);
      b.write(`patched ${seed} v2`, 20_000);
      files[`/usr/lib/app/lib${i}.so`] = b;
    }
    files['/usr/share/app/doc-5.txt'] = textFile(`${seed}:doc:5:v2`, 80);
    files['/usr/lib/app/libnew.so'] = pseudoRandomBytes(20_000, `${seed}:new`);
  }
  return { files };
}
