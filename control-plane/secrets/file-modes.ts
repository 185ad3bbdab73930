import { chmod, mkdir, open, stat } from 'node:fs/promises';
import type { Logger } from '../../common/log.js';

/** SQLite's companions of a database file: they hold the same pages, so they are as secret. */
const COMPANIONS = ['', '-wal', '-shm', '-journal'];

/**
 * Makes `dir` (created if missing) 0700. A directory that exists with group or other access is
 * tightened and the log says so: the data dir holds the database, the key secret and admin.token.
 */
export async function privateDir(dir: string, log: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await tighten(dir, 0o700, log);
}

/**
 * Creates the database file empty with 0600 before SQLite opens it (SQLite gives its -wal and -shm
 * files the database file's mode), and tightens an existing one and its companions to 0600.
 */
export async function privateDatabaseFile(file: string, log: Logger): Promise<void> {
  const created = await open(file, 'wx', 0o600).then(
    async (h) => {
      await h.close();
      return true;
    },
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return false;
      throw err;
    },
  );
  if (created) await chmod(file, 0o600); // the umask may have taken bits away, never added; be exact
  for (const suffix of COMPANIONS) await tighten(file + suffix, 0o600, log);
}

/** chmod to `mode` when group or other may access `path`; a missing path is left alone. */
export async function tighten(path: string, mode: number, log: Logger): Promise<void> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!st || (st.mode & 0o077) === 0) return;
  await chmod(path, mode);
  log.warn({ path, was: (st.mode & 0o777).toString(8), now: mode.toString(8) }, 'tightened the mode of a secret path: group and other users could read it');
}
