import type { Context } from 'hono';
import type { Manifest } from '../../manifests/model.js';
import type { Reader } from '../campaigns/store.js';
import { errorBody, type AppEnv } from '../http.js';
import { checkRollout, privilegeRefusal } from '../policy/service.js';
import { checkVariables } from './check.js';
import { checkSecrets } from '../device-secrets/check.js';

/**
 * The up-front check of a rollout (campaign create, device assign), one place for every reason to
 * refuse it before any device is taken: privileges no policy grants (policy/service.ts), then
 * variables some target devices lack or that conflict. Returns the 422 to answer, or null to go on.
 */
export async function rolloutRefusal(c: Context<AppEnv>, db: Reader, release: string, spec: Manifest, selectorText: string, onlyDevice?: string): Promise<Response | null> {
  const privileges = await checkRollout(db, release, spec, selectorText, onlyDevice);
  if (!privileges.ok) return privilegeRefusal(c, privileges);
  const vars = await checkVariables(db, release, spec, selectorText, onlyDevice);
  if (!vars.ok) {
    const message = `the rollout of ${release} needs variables some target devices lack: ${vars.groups.map((g) => g.message).join('; ')}`;
    return c.json({ ...errorBody('variables-lacking', message, 'manifest'), variables: vars }, 422);
  }
  const secrets = await checkSecrets(db, spec, selectorText, onlyDevice);
  if (!secrets.ok) return c.json({ ...errorBody('secrets-lacking', `the rollout of ${release} is refused: ${secrets.message}`, 'manifest'), secretsCheck: secrets }, 422);
  return null;
}
