import { describe, expect, it } from 'vitest';
import { formatIssue, parseManifest } from '../../manifests/parse.js';
import { normalizedManifestSchema } from '../../manifests/schema.js';
import { secretsUsed } from '../../manifests/secrets.js';
import type { Manifest } from '../../manifests/model.js';

function ok(text: string): Manifest {
  const r = parseManifest(text, 'm.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}
function errors(text: string): string[] {
  const r = parseManifest(text, 'm.yaml');
  if (r.ok) throw new Error('expected the manifest to be refused');
  return r.errors.map((e) => formatIssue({ ...e, line: undefined, column: undefined }));
}
const head = 'name: app\nversion: 1.0.0\n';
const svc = (secrets: string) => `${head}services:\n  web:\n    image: registry.example.com/acme/web:1.0\n    secrets: ${secrets}\n`;

describe('manifest secrets', () => {
  it('normalizes the short and the long form, with defaults (0400, uid/gid 0, target = name)', () => {
    const m = ok(svc('[db_password, {source: api_key, target: key.txt, uid: "1000", gid: 1000, mode: 0440}]') + 'secrets: { db_password: {}, api_key: }\n');
    expect(m.services.web.secrets).toEqual([
      { source: 'db_password', target: 'db_password', uid: 0, gid: 0, mode: 0o400 },
      { source: 'api_key', target: 'key.txt', uid: 1000, gid: 1000, mode: 0o440 },
    ]);
    expect(m.secrets).toEqual({ db_password: {}, api_key: {} });
    expect(secretsUsed(m)).toEqual(['api_key', 'db_password']);
    expect(normalizedManifestSchema.safeParse(m).success).toBe(true);
  });

  it('leaves secrets out of a manifest that uses none (its digest does not move)', () => {
    const m = ok(`${head}services:\n  web: { image: registry.example.com/acme/web:1.0 }\n`);
    expect('secrets' in m).toBe(false);
    expect('secrets' in m.services.web).toBe(false);
  });

  it('refuses an undeclared secret, naming the service and the index', () => {
    expect(errors(svc('[db_password, other]') + 'secrets: { db_password: {} }\n')).toEqual([
      'm.yaml: services.web.secrets[1]: unknown secret "other": declare it under top-level secrets (secrets: {other: {}}); declared: db_password',
    ]);
  });

  it('refuses values from the author\'s machine (file, environment) with the reason', () => {
    const e = errors(svc('[db]') + 'secrets: { db: { file: ./db.txt } }\n');
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^m\.yaml: secrets\.db\.file: file is not supported: Berth takes secret values from the control plane/);
    expect(errors(svc('[db]') + 'secrets: { db: { environment: DB } }\n')[0]).toMatch(/secrets\.db\.environment: environment is not supported/);
  });

  it('refuses a target outside /run/secrets, a target used twice and a bad mode', () => {
    expect(errors(svc('[{source: db, target: /etc/passwd}]') + 'secrets: { db: {} }\n')[0]).toMatch(/services\.web\.secrets\[0\]\.target: target "\/etc\/passwd" must be a file name/);
    expect(errors(svc('[db, {source: db2, target: db}]') + 'secrets: { db: {}, db2: {} }\n')[0]).toMatch(/services\.web\.secrets\[1\]: \/run\/secrets\/db is mounted twice/);
    expect(errors(svc('[{source: db, mode: 999}]') + 'secrets: { db: {} }\n')[0]).toMatch(/services\.web\.secrets\[0\]\.mode: mode "999" is not an octal mode/);
  });
});
