import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hono } from 'hono';
import type { ControlPlaneContext } from '../context.js';
import { HttpError, type AppEnv } from '../http.js';
import { consoleApiRoutes } from './api.js';
import { ChangeFeed } from './changes.js';

/**
 * The console's files ship in the package (control-plane/ui/assets/: hand-written HTML, CSS and
 * ES modules, no build step) and are read once at start. From dist/ they are found beside the
 * sources, as /docs finds swagger-ui-dist.
 */
function assetsDir(): string {
  const here = join(import.meta.dirname, 'assets');
  if (existsSync(join(here, 'index.html'))) return here;
  return join(import.meta.dirname, '..', '..', '..', 'control-plane', 'ui', 'assets');
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

/** Scripts and styles only from this origin, no inline code, no framing, no form posts elsewhere. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function headers(type: string): Record<string, string> {
  return {
    'Content-Type': type,
    'Content-Security-Policy': CONSOLE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    // Revalidated on every load: an upgraded control plane serves its own console at once.
    'Cache-Control': 'no-cache',
  };
}

interface Asset {
  body: string;
  type: string;
}

function loadAssets(): { page: string; files: Map<string, Asset> } {
  const dir = assetsDir();
  const files = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const ext = name.slice(name.lastIndexOf('.'));
    if (TYPES[ext] && /^[a-z0-9-]+\.[a-z]+$/.test(name)) files.set(name, { body: readFileSync(join(dir, name), 'utf8'), type: TYPES[ext] });
  }
  return { page: readFileSync(join(dir, 'index.html'), 'utf8'), files };
}

/** `/ui/` and its files (anyone: the page holds no data; every call it makes needs the operator's token). */
export function consoleRoutes(ctx: ControlPlaneContext): { ui: Hono<AppEnv>; api: Hono<AppEnv>; feed: ChangeFeed } {
  const { page, files } = loadAssets();
  const ui = new Hono<AppEnv>();
  ui.get('/ui', (c) => c.text('the console is at /ui/', 302, { Location: '/ui/' }));
  ui.get('/ui/', (c) => c.body(page, 200, headers('text/html; charset=utf-8')));
  ui.get('/ui/assets/:file', (c) => {
    const f = files.get(c.req.param('file'));
    if (!f) throw new HttpError(404, 'not-found', `no file ${c.req.param('file')} in /ui/assets`);
    return c.body(f.body, 200, headers(f.type));
  });
  const feed = new ChangeFeed(ctx);
  return { ui, api: consoleApiRoutes(ctx, feed), feed };
}
