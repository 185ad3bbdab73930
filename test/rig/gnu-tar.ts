import { execFileSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Layer tars written by GNU tar from a real directory, for what the forge's own writer does not
 * make: hard links, PAX records (long names), whiteouts (`.wh.NAME`, `.wh..wh..opq`) next to
 * files, symlinks and directories. Deterministic: sorted, mtime 0, owner 0, no atime/ctime.
 */
export type TreeFile =
  | string
  | Buffer
  | { symlink: string }
  | { hardlink: string }
  | { content: string | Buffer; mode: number }
  | { directory: true; mode?: number };

export function gnuTar(files: Record<string, TreeFile>, opts: { format?: 'pax' | 'gnu' } = {}): Buffer {
  const root = mkdtempSync(join(tmpdir(), 'berth-gnutar-'));
  try {
    const tree = join(root, 'tree');
    mkdirSync(tree);
    const links: [string, string][] = [];
    for (const [path, file] of Object.entries(files)) {
      const full = join(tree, path.replace(/^\/+/, ''));
      mkdirSync(dirname(full), { recursive: true });
      if (typeof file === 'string' || Buffer.isBuffer(file)) writeFileSync(full, file);
      else if ('symlink' in file) symlinkSync(file.symlink, full);
      else if ('hardlink' in file) links.push([file.hardlink, full]);
      else if ('directory' in file) {
        mkdirSync(full, { recursive: true });
        chmodSync(full, file.mode ?? 0o755);
      } else {
        writeFileSync(full, file.content);
        chmodSync(full, file.mode);
      }
    }
    for (const [target, full] of links) linkSync(join(tree, target.replace(/^\/+/, '')), full);
    const out = join(root, 'layer.tar');
    execFileSync('tar', [
      '--create', `--format=${opts.format ?? 'pax'}`, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner',
      ...(opts.format === 'gnu' ? [] : ['--pax-option=delete=atime,delete=ctime,exthdr.name=%d/PaxHeaders/%f']),
      '--file', out, '-C', tree, '.',
    ]);
    return readFileSync(out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
