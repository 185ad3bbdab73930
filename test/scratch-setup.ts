import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/**
 * Each test file's temporary files go under one directory of its own (TMPDIR, which `os.tmpdir()`
 * and the processes a test spawns read), removed when the file is done, passed or failed. Tests
 * make state dirs, key files, caches and sockets in many places; without this every run left
 * dozens of directories in /tmp. `BERTH_KEEP_TEST_TMP=1` keeps them to look at after a failure.
 * Files run one after another in a worker process (the forks pool), so one TMPDIR at a time is right.
 */
const outer = process.env.TMPDIR;
const root = mkdtempSync(join(tmpdir(), 'berth-test-'));
process.env.TMPDIR = root;

afterAll(() => {
  if (outer === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = outer;
  if (process.env.BERTH_KEEP_TEST_TMP) {
    console.log(`kept the test file's temporary files in ${root}`);
    return;
  }
  // A test that lazily unmounted a tmpfs under it leaves an empty, detached directory: removable.
  rmSync(root, { recursive: true, force: true, maxRetries: 3 });
});
