import { Hono } from 'hono';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { answerCheckFromEnv } from '../../../protocol/answer-check.js';
import { errorEnvelope, json, route } from '../../../protocol/route.js';

// A route registered with a wrong schema: it answers {count: "three"}, its contract says a number.
// The test below never looks at the body, and passes by itself; the setup file must fail the file.
it('calls a route whose answer its contract does not describe, and looks away', async () => {
  const thing = route({ method: 'get', path: '/v1/count', summary: 'a count', auth: 'none', responses: { 200: json(z.object({ count: z.number() })) } });
  const check = answerCheckFromEnv({ title: 'fixture', version: '1', error: errorEnvelope, routes: [thing] }, process.env, (message) => ({ error: { code: 'contract-violation', message } }));
  expect(check).not.toBeNull();
  const app = new Hono();
  if (check) app.use('*', check);
  app.get('/v1/count', (c) => c.json({ count: 'three' }));
  await app.request('/v1/count');
});
