import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { hashToken } from './auth.js';
import { tighten } from '../secrets/file-modes.js';
import type { ControlPlaneContext } from '../context.js';
import { operatorTokens } from '../db/schema.js';
import { createOperatorToken } from './routes.js';

export const BOOTSTRAP_TOKEN_NAME = 'bootstrap-admin';

/**
 * First start on an empty database: the signing key and the first admin token. The token goes to
 * `<data-dir>/admin.token` (0600) and the log names that path, never the token. A preset token
 * (BERTH_ADMIN_TOKEN) is registered instead and not written anywhere.
 */
export async function bootstrap(ctx: ControlPlaneContext, presetAdminToken: string | undefined): Promise<{ adminToken?: string; adminTokenFile: string }> {
  const file = join(ctx.config.dataDir, 'admin.token');
  // Operator tokens are recognized by their prefix (so a device JWT is never looked up as one); a
  // preset without it would be stored but never accepted, so refuse it loudly instead.
  if (presetAdminToken !== undefined && !/^berth_[A-Za-z0-9_-]{32,}$/.test(presetAdminToken)) {
    throw new Error('BERTH_ADMIN_TOKEN must look like berth_<at least 32 base64url characters>, e.g. berth_$(openssl rand -base64 33 | tr "+/" "-_")');
  }
  const now = ctx.now().getTime();
  const made = await ctx.write(async (tx) => {
    if (await ctx.keys.ensure(tx, now)) await ctx.audit(tx, { actor: 'system', action: 'key.create', target: 'signing-key' });
    if (presetAdminToken) {
      const known = await tx.select({ id: operatorTokens.id }).from(operatorTokens).where(eq(operatorTokens.tokenHash, hashToken(presetAdminToken))).limit(1);
      if (known.length === 0) {
        const { row } = await createOperatorToken(tx, { name: 'preset-admin', role: 'admin', createdBy: 'system', expiresAt: null, now, token: presetAdminToken });
        await ctx.audit(tx, { actor: 'system', action: 'token.create', target: row.id, after: { name: row.name, role: row.role, source: 'BERTH_ADMIN_TOKEN' } });
      }
      return null;
    }
    // Only into an empty operator table: a revoked bootstrap token must not come back at the next start.
    const existing = await tx.select({ id: operatorTokens.id }).from(operatorTokens).limit(1);
    if (existing.length > 0) return null;
    const { token, row } = await createOperatorToken(tx, { name: BOOTSTRAP_TOKEN_NAME, role: 'admin', createdBy: 'system', expiresAt: null, now });
    await ctx.audit(tx, { actor: 'system', action: 'token.create', target: row.id, after: { name: row.name, role: row.role, file } });
    // Written before the commit: a crash in between leaves a file whose token never worked, not a
    // valid token nobody can read.
    await mkdir(ctx.config.dataDir, { recursive: true });
    await writeFile(file, token + '\n', { mode: 0o600 });
    await chmod(file, 0o600);
    return token;
  });
  await ctx.keys.load();
  if (presetAdminToken) return { adminToken: presetAdminToken, adminTokenFile: file };
  if (made) {
    ctx.log.info({ adminTokenFile: file }, 'created the first admin token; read it from this file');
    return { adminToken: made, adminTokenFile: file };
  }
  await tighten(file, 0o600, ctx.log);
  const fromFile = await readFile(file, 'utf8').then((t) => t.trim(), () => undefined);
  return { adminToken: fromFile, adminTokenFile: file };
}
