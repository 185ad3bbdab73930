import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { CHECK_ANSWERS_ENV } from '../../protocol/answer-check.js';

/**
 * Every integration test file runs with the control plane checking its answers against protocol/
 * (in this process and in the processes it spawns, which inherit the environment). A route that
 * answered outside its contract fails the file here, even if no test looked at that answer.
 */
const file = join(tmpdir(), `berth-answers-${process.pid}-${randomUUID()}.jsonl`);
process.env[CHECK_ANSWERS_ENV] = file;

afterAll(() => {
  if (!existsSync(file)) return;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  rmSync(file, { force: true });
  throw new Error(`${lines.length} answer(s) outside the contract (protocol/):\n${lines.join('\n')}`);
});
