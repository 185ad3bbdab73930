import { LibsqlError } from '@libsql/client';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import { describe, expect, it } from 'vitest';
import { errorAnswerOf, HttpError } from '../../control-plane/http.js';
import { WRITER_UNAVAILABLE } from '../../control-plane/db/busy.js';

/**
 * How an error thrown by a route becomes its answer (control-plane/http.ts errorAnswerOf), the same
 * for the Hono routes (app.ts) and those on node:http (device-api/direct-serve.ts): a write the
 * database refused busy is a 503 with Retry-After, not a 500 (issue 17).
 */
describe('errorAnswerOf', () => {
  const busy = {
    status: 503,
    body: { error: { code: 'database-busy', message: 'the database was busy and nothing was written; try again in 1 s' } },
    headers: { 'Retry-After': '1' },
    level: 'warn',
  };

  it('answers SQLITE_BUSY and its variants 503 with Retry-After, also wrapped by drizzle, and a writer process gone alike', () => {
    const locked = new LibsqlError('database is locked', 'SQLITE_BUSY');
    expect(errorAnswerOf(locked)).toEqual(busy);
    expect(errorAnswerOf(new LibsqlError('snapshot', 'SQLITE_BUSY_SNAPSHOT'))).toEqual(busy);
    expect(errorAnswerOf(new DrizzleQueryError('INSERT INTO reported …', [], locked))).toEqual(busy);
    expect(errorAnswerOf(Object.assign(new Error('the writer process is restarting'), { code: WRITER_UNAVAILABLE }))).toEqual(busy);
  });

  it('answers a refusal as it says and anything else 500 without its details', () => {
    expect(errorAnswerOf(new HttpError(400, 'invalid-body', 'body field phase: bad', 'phase'))).toEqual({ status: 400, body: { error: { code: 'invalid-body', message: 'body field phase: bad', field: 'phase' } }, level: 'info' });
    const internal = { status: 500, body: { error: { code: 'internal', message: 'internal error; see the control plane log with this request id' } }, level: 'error' };
    expect(errorAnswerOf(new LibsqlError('UNIQUE constraint failed: devices.serial', 'SQLITE_CONSTRAINT'))).toEqual(internal);
    expect(errorAnswerOf(new Error('SQLITE_BUSY in a message is not a code'))).toEqual(internal);
    expect(errorAnswerOf('a string')).toEqual(internal);
  });
});
