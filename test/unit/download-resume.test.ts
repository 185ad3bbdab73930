import { describe, expect, it } from 'vitest';
import { bodyPlan, resumeStart } from '../../edge-daemon/download/resume.js';

const digest = `sha256:${'a'.repeat(64)}`;

describe('resumeStart', () => {
  it('starts from zero without a partial file', () => {
    expect(resumeStart(0, 100, digest)).toEqual({ kind: 'fetch', offset: 0, headers: {} });
  });
  it('asks for the rest, conditional on the same digest', () => {
    expect(resumeStart(40, 100, digest)).toEqual({
      kind: 'fetch',
      offset: 40,
      headers: { Range: 'bytes=40-', 'If-Range': `"${digest}"` },
    });
  });
  it('verifies a partial that is already complete or too long instead of fetching', () => {
    expect(resumeStart(100, 100, digest)).toEqual({ kind: 'verify' });
    expect(resumeStart(101, 100, digest)).toEqual({ kind: 'verify' });
  });
});

describe('bodyPlan', () => {
  it('appends a 206 that continues the file', () => {
    expect(bodyPlan(206, 'bytes 40-99/100', 40, 100)).toEqual({ kind: 'append', offset: 40 });
  });
  it('restarts the file on a 200 (server ignored the range)', () => {
    expect(bodyPlan(200, null, 40, 100)).toEqual({ kind: 'restart' });
  });
  it('discards when the range starts elsewhere or is unsatisfiable', () => {
    expect(bodyPlan(206, 'bytes 50-99/100', 40, 100)).toEqual({ kind: 'discard' });
    expect(bodyPlan(416, 'bytes */100', 140, 100)).toEqual({ kind: 'discard' });
  });
  it('fails permanently when the proxy has a blob of another size', () => {
    expect(bodyPlan(206, 'bytes 40-119/120', 40, 100)).toMatchObject({ kind: 'fail', transient: false });
  });
  it('sorts error statuses', () => {
    expect(bodyPlan(404, null, 0, 100)).toEqual({ kind: 'unavailable' });
    expect(bodyPlan(401, null, 0, 100)).toEqual({ kind: 'unauthorized' });
    expect(bodyPlan(503, null, 0, 100)).toMatchObject({ kind: 'fail', transient: true });
    expect(bodyPlan(403, null, 0, 100)).toMatchObject({ kind: 'fail', transient: false });
  });
});
