import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Hono, type MiddlewareHandler } from 'hono';
import { answerCheckFromEnv } from '../protocol/answer-check.js';
import { controlPlaneApi } from '../protocol/control-plane.js';
import { openApiDocument } from '../protocol/openapi.js';
import type { ControlPlaneContext } from './context.js';
import { errorBody, HttpError, type AppEnv } from './http.js';

/**
 * The control plane describing itself: /openapi.json generated from protocol/, and /docs, which
 * renders it with Swagger UI from the swagger-ui-dist package on this server. The page loads
 * nothing from elsewhere, and its Content-Security-Policy says so to the browser.
 */

const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // Swagger UI's stylesheet draws its icons as data: SVGs.
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

// Relative links: the page works under whatever prefix a reverse proxy mounts the control plane at.
const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Berth control plane API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
`;

// An inline script would need 'unsafe-inline'; this one is a file. validatorUrl: null keeps the
// page from asking validator.swagger.io to judge the description.
const INIT = `window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });\n`;

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

const headers = (type: string) => ({ 'Content-Type': type, 'Content-Security-Policy': DOCS_CSP, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'max-age=3600' });

export function describeRoutes(ctx: ControlPlaneContext): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const dist = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const files = new Map<string, Promise<Buffer>>();
  const document = JSON.stringify(openApiDocument(controlPlaneApi, ctx.config.publicUrl));

  app.get('/openapi.json', (c) => c.body(document, 200, { 'Content-Type': 'application/json' }));
  app.get('/docs', (c) => c.body(PAGE, 200, headers('text/html; charset=utf-8')));
  app.get('/docs/:file', async (c) => {
    const name = c.req.param('file');
    if (name === 'init.js') return c.body(INIT, 200, headers('text/javascript; charset=utf-8'));
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!type) throw new HttpError(404, 'not-found', `no file ${name} in /docs`);
    let file = files.get(name);
    if (!file) files.set(name, (file = readFile(join(dist, name))));
    return c.body(new Uint8Array(await file), 200, headers(type));
  });
  return app;
}

/** Under test (BERTH_CHECK_ANSWERS), every answer is checked against protocol/; otherwise null. */
export function answerCheck(env: NodeJS.ProcessEnv): MiddlewareHandler | null {
  return answerCheckFromEnv(controlPlaneApi, env, (message) => errorBody('contract-violation', message));
}
