import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatIssue, isPinned, manifestDigest, parseManifest, pinManifest, type ManifestIssue } from '../../manifests/parse.js';
import { normalizedManifestSchema } from '../../manifests/schema.js';
import type { Manifest } from '../../manifests/model.js';
import { substituteVariables } from '../../manifests/variables.js';

const D1 = 'sha256:' + 'a'.repeat(64);
const D2 = 'sha256:' + 'b'.repeat(64);
const EXAMPLES = join(import.meta.dirname, '../../manifests/examples');

function ok(text: string, file = 'm.yaml'): Manifest {
  const r = parseManifest(text, file);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.manifest;
}
/** The errors without line:column (checked on their own below), so the cases read as key paths. */
function errors(text: string, file = 'm.yaml'): string[] {
  const r = parseManifest(text, file);
  if (r.ok) throw new Error('expected the manifest to be refused');
  return r.errors.map((e) => formatIssue({ ...e, line: undefined, column: undefined }));
}
/** A valid one-service manifest with `extra` YAML appended to the service block. */
function withService(extra: string, tail = ''): string {
  const indented = extra.split('\n').map((l) => (l ? '    ' + l : l)).join('\n');
  return `name: app\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web:1.0\n${indented}\n${tail}`;
}

describe('example manifests', () => {
  const files = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));
  it('has the three documented examples', () => {
    expect(files).toEqual(expect.arrayContaining(['weather-station.yaml', 'minimal.yaml', 'stop-then-start.yaml']));
  });
  for (const f of files) {
    it(`${f} validates and matches the normalized schema`, () => {
      const m = ok(readFileSync(join(EXAMPLES, f), 'utf8'), f);
      expect(normalizedManifestSchema.safeParse(m).success).toBe(true);
    });
  }
  it('weather-station normalizes the issue example as documented', () => {
    const m = ok(readFileSync(join(EXAMPLES, 'weather-station.yaml'), 'utf8'));
    const c = m.services.collector;
    expect(m.name).toBe('weather-station');
    expect(c.command).toEqual(['/bin/collector', '--port', '8080']);
    expect(c.environment).toEqual({ LOG_LEVEL: 'info' });
    expect(c.volumes).toEqual([{ source: 'data', target: '/var/lib/collector', readOnly: false }]);
    expect(c.healthcheck).toEqual({ test: ['CMD', 'wget', '-q', '-O-', 'http://127.0.0.1:8080/healthz'], intervalMs: 5000, timeoutMs: 2000, retries: 3, startPeriodMs: 10_000 });
    expect(c.dependsOn).toEqual({ broker: { condition: 'service_healthy' } });
    expect(c.memoryBytes).toBe(128 * 1024 * 1024);
    expect(c.nanoCpus).toBe(500_000_000);
    expect(m.volumes).toEqual({ data: {} });
    expect(m.update).toEqual({ strategy: 'download-then-swap', healthTimeoutMs: 60_000 });
    expect(isPinned(m)).toBe(true);
  });
  it('stop-then-start example carries its strategy and short forms', () => {
    const m = ok(readFileSync(join(EXAMPLES, 'stop-then-start.yaml'), 'utf8'));
    expect(m.update).toEqual({ strategy: 'stop-then-start', healthTimeoutMs: 120_000 });
    expect(m.services.bridge.healthcheck?.test).toEqual(['NONE']);
    expect(m.services.bridge.networkMode).toBe('none');
    expect(isPinned(m)).toBe(false);
  });
});

describe('valid manifests', () => {
  it('applies the documented defaults', () => {
    const m = ok('name: app\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web:1.0\n');
    expect(m).toEqual({
      name: 'app',
      version: '1.0.0',
      services: { web: { image: 'registry.example.com/acme/web:1.0', environment: {}, networkMode: 'networks', networks: { default: { aliases: [] } }, restart: 'no', volumes: [], dependsOn: {}, labels: {} } },
      volumes: {},
      networks: { default: {} },
      update: { strategy: 'download-then-swap', healthTimeoutMs: 60_000 },
    });
  });

  it('accepts JSON', () => {
    const json = JSON.stringify({ name: 'app', version: '2.1.0', services: { web: { image: `registry.example.com/acme/web@${D1}`, environment: ['A=1'] } } });
    const m = ok(json, 'app.json');
    expect(m.services.web.environment).toEqual({ A: '1' });
    expect(isPinned(m)).toBe(true);
  });

  it('splits string commands into shell words like Compose', () => {
    const m = ok(withService(`command: sh -c 'echo "hi there"' --flag=\\"x\\"\nentrypoint: ["/init"]`));
    expect(m.services.web.command).toEqual(['sh', '-c', 'echo "hi there"', '--flag="x"']);
    expect(m.services.web.entrypoint).toEqual(['/init']);
  });

  it('stringifies environment and label values, map or list', () => {
    const m = ok(withService('environment: { PORT: 8080, DEBUG: false, NAME: x }\nlabels: ["com.example.tier=edge", "flag"]'));
    expect(m.services.web.environment).toEqual({ PORT: '8080', DEBUG: 'false', NAME: 'x' });
    expect(m.services.web.labels).toEqual({ 'com.example.tier': 'edge', flag: '' });
  });

  it('reads healthcheck string tests as CMD-SHELL and durations in milliseconds', () => {
    const m = ok(withService('healthcheck: { test: "curl -f http://127.0.0.1/", interval: 1m30s, timeout: 500ms, start_period: 1h }'));
    expect(m.services.web.healthcheck).toEqual({ test: ['CMD-SHELL', 'curl -f http://127.0.0.1/'], intervalMs: 90_000, timeoutMs: 500, retries: 3, startPeriodMs: 3_600_000 });
  });

  it('reads memory in every Compose spelling', () => {
    for (const [text, bytes] of [['1g', 1024 ** 3], ['512k', 512 * 1024], ['64mb', 64 * 1024 ** 2], ['1048576', 1048576]] as const) {
      expect(ok(withService(`mem_limit: ${text}`)).services.web.memoryBytes).toBe(bytes);
    }
  });

  it('allows x- extension keys at the top level and in services, with YAML anchors', () => {
    const m = ok(`x-common: &common\n  restart: always\nname: app\nversion: 1.0.0\nservices:\n  web:\n    <<: *common\n    x-owner: team-a\n    image: registry.example.com/acme/web:1.0\n`);
    expect(m.services.web.restart).toBe('always');
    expect(JSON.stringify(m)).not.toContain('team-a');
  });

  it('treats names like constructor and __proto__ as plain names', () => {
    expect(errors(withService('environment: { __proto__: x }\nlabels: { a: b }'))).toEqual(['m.yaml: services.web.environment.__proto__: the key __proto__ is not allowed']);
    expect(errors(withService('environment: [__proto__=2]'))[0]).toContain('services.web.environment[0]: environment variable name "__proto__" must be');
    const m = ok(withService('environment: [constructor=1, toString=3]'));
    expect(Object.entries(m.services.web.environment)).toEqual([['constructor', '1'], ['toString', '3']]);
    expect(errors(withService('depends_on: [constructor]'))).toEqual(['m.yaml: services.web.depends_on[0]: unknown service "constructor" (services: web)']);
    expect(errors(withService('constructor: 1'))).toEqual(['m.yaml: services.web.constructor: not supported']);
  });

  it('keeps $$ as written (the escaped form); a device reads it as a literal $, like Compose', () => {
    const m = ok(withService(`command: ["sh", "-c", "echo $$HOME costs $$5"]\nhealthcheck: { test: "test -n \\"$$PATH\\"" }`));
    expect(m.services.web.command).toEqual(['sh', '-c', 'echo $$HOME costs $$5']);
    const device = substituteVariables(m, {});
    if (!('value' in device)) throw new Error('expected no variables');
    expect(device.value.services.web.command).toEqual(['sh', '-c', 'echo $HOME costs $5']);
    expect(device.value.services.web.healthcheck?.test).toEqual(['CMD-SHELL', 'test -n "$PATH"']);
  });

  it('reads restart: no unquoted as the string (YAML 1.2)', () => {
    expect(ok(withService('restart: no')).services.web.restart).toBe('no');
  });

  it('accepts a long-form read-only volume and list depends_on', () => {
    const m = ok(
      `name: app\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web:1.0\n    depends_on: [db]\n    volumes: [{ type: volume, source: data, target: /data, read_only: true }, "data:/ro:ro"]\n  db:\n    image: registry.example.com/acme/db:1.0\nvolumes:\n  data:\n`,
    );
    expect(m.services.web.dependsOn).toEqual({ db: { condition: 'service_started' } });
    expect(m.services.web.volumes).toEqual([
      { source: 'data', target: '/data', readOnly: true },
      { source: 'data', target: '/ro', readOnly: true },
    ]);
  });
});

describe('refused manifests name file, path and expectation', () => {
  const cases: [string, string, string][] = [
    ['build', withService('build: .'), 'm.yaml: services.web.build: not supported'],
    ['unknown top-level key', withService('', 'configs: {}'), 'm.yaml: configs: not supported'],
    ['relative bind mount', withService('volumes: ["./conf:/etc/app"]'), 'm.yaml: services.web.volumes[0]: bind source "./conf" is relative to the author\'s machine'],
    ['container network mode', withService('network_mode: "container:abc"'), 'm.yaml: services.web.network_mode: container:… is not supported'],
    ['restart with a bad count', withService('restart: "on-failure:x"'), 'm.yaml: services.web.restart: expected no, always, on-failure, on-failure:N or unless-stopped, got "on-failure:x"'],
    ['unknown x-berth key', withService('', 'x-berth: { rollout: fast }'), 'm.yaml: x-berth.rollout: not supported'],
    ['x-berth inside a service', withService('x-berth: { a: 1 }'), 'm.yaml: services.web.x-berth: not supported'],
    ['deploy.replicas', withService('deploy: { replicas: 2 }'), 'm.yaml: services.web.deploy.replicas: not supported'],
    ['bad duration', withService('healthcheck: { test: "true", interval: fast }'), 'm.yaml: services.web.healthcheck.interval: expected a duration like 30s, 1m30s or 500ms, got "fast"'],
    ['numeric duration', withService('stop_grace_period: 10'), 'm.yaml: services.web.stop_grace_period: expected a duration like 30s, 1m30s or 500ms, got 10'],
    ['bad memory', withService('deploy: { resources: { limits: { memory: lots } } }'), 'm.yaml: services.web.deploy.resources.limits.memory: expected a size like 128M, 1g, 512k or a number of bytes, got "lots"'],
    ['bad cpus', withService('cpus: half'), 'm.yaml: services.web.cpus: expected a CPU count like "0.5" or 2, got "half"'],
    ['bad image', withService('').replace('registry.example.com/acme/web:1.0', 'registry.example.com/Acme/web:1.0'), 'm.yaml: services.web.image: invalid image reference'],
    ['bad digest', withService('').replace('web:1.0', 'web@sha256:abc'), 'digest must be sha256:<64 lowercase hex>'],
    ['undeclared volume', withService('volumes: ["cache:/cache"]'), 'm.yaml: services.web.volumes[0]: volume "cache" is not declared under top-level volumes'],
    ['anonymous volume', withService('volumes: ["/cache"]'), 'm.yaml: services.web.volumes[0]: anonymous volume "/cache" is not supported'],
    ['unknown depends_on', withService('depends_on: [db]'), 'm.yaml: services.web.depends_on[0]: unknown service "db"'],
    ['self dependency', withService('depends_on: { web: { condition: service_started } }'), 'm.yaml: services.web.depends_on.web: "web" cannot depend on itself'],
    ['depends_on listed twice', `name: app\nversion: 1.0.0\nservices:\n  web: { image: registry.example.com/w:1, depends_on: [db, db] }\n  db: { image: registry.example.com/d:1 }\n`, 'm.yaml: services.web.depends_on[1]: "db" is listed twice'],
    ['depends_on restart key', withService('depends_on: { web: { condition: service_started, restart: true } }'), 'm.yaml: services.web.depends_on.web.restart: not supported'],
    ['$VAR without braces', withService('command: echo $HOME'), 'm.yaml: services.web.command: $HOME: write ${HOME} for a Berth variable, or $$HOME for a literal $'],
    ['bad condition', withService('depends_on: { web: { condition: service_ready } }'), 'services.web.depends_on.web.condition: expected "service_started" or "service_healthy" or "service_completed_successfully", got "service_ready"'],
    ['environment list without value', withService('environment: [A=1, HOME]'), 'm.yaml: services.web.environment[1]: "HOME" has no value'],
    ['environment map without value', withService('environment: { HOME: }'), 'm.yaml: services.web.environment.HOME: has no value'],
    ['healthcheck test form', withService('healthcheck: { test: ["wget", "x"] }'), 'm.yaml: services.web.healthcheck.test: expected ["CMD", program, args…]'],
    ['healthcheck without test', withService('healthcheck: { interval: 5s }'), 'm.yaml: services.web.healthcheck.test: required'],
    ['mem_limit and deploy memory', withService('mem_limit: 1g\ndeploy: { resources: { limits: { memory: 1g } } }'), 'm.yaml: services.web.mem_limit: conflicts with deploy.resources.limits.memory'],
    ['unterminated quote', withService('command: echo "hi'), 'm.yaml: services.web.command: cannot split "echo \\"hi" into words: unterminated double quote'],
    ['relative working_dir', withService('working_dir: srv'), 'm.yaml: services.web.working_dir: expected an absolute path, got "srv"'],
    ['missing image', 'name: app\nversion: 1.0.0\nservices:\n  web: { restart: always }\n', 'm.yaml: services.web.image: required: expected an image reference'],
    ['name', 'name: Weather_Station\nversion: 1.0.0\nservices: { a: { image: registry.example.com/a:1 } }\n', 'm.yaml: name: expected a name of lowercase letters'],
    ['numeric version', 'name: app\nversion: 1.4\nservices: { a: { image: registry.example.com/a:1 } }\n', 'm.yaml: version: 1.4 looks like Compose\'s obsolete file-format version'],
    ['compose file-format version', 'name: app\nversion: "3.8"\nservices: { a: { image: registry.example.com/a:1 } }\n', 'm.yaml: version: "3.8" looks like Compose\'s obsolete file-format version; Berth\'s version is the release\'s own version: write it as MAJOR.MINOR.PATCH, e.g. version: "1.0.0"'],
    ['bad release version', 'name: app\nversion: v1\nservices: { a: { image: registry.example.com/a:1 } }\n', 'm.yaml: version: expected a release version like 1.4.0'],
    ['no services', 'name: app\nversion: 1.0.0\nservices: {}\n', 'm.yaml: services: expected at least one service'],
    ['volume driver', withService('', 'volumes: { data: { driver: local } }'), 'm.yaml: volumes.data.driver: not supported'],
    ['strategy', withService('', 'x-berth: { update: { strategy: yolo } }'), 'm.yaml: x-berth.update.strategy: expected download-then-swap or stop-then-start, got "yolo"'],
    ['not a map', '- a\n- b\n', 'm.yaml: expected a map with name, version and services, got a list'],
    ['empty file', '', 'm.yaml: expected a map with name, version and services, got nothing'],
  ];
  for (const [what, text, message] of cases) {
    it(what, () => {
      const errs = errors(text);
      expect(errs.some((e) => e.includes(message)), `${errs.join('\n')}\n  should include: ${message}`).toBe(true);
    });
  }

  it('reports a dependency cycle once, naming its members', () => {
    const text = `name: app\nversion: 1.0.0\nservices:\n  a: { image: registry.example.com/a:1, depends_on: [b] }\n  b: { image: registry.example.com/b:1, depends_on: [c] }\n  c: { image: registry.example.com/c:1, depends_on: { a: { condition: service_healthy } } }\n`;
    expect(errors(text)).toEqual(['m.yaml: services.a.depends_on: dependency cycle: a → b → c → a']);
  });

  it('reports all three problems of a file with three problems', () => {
    const text = withService('build: .\nhealthcheck: { test: "true", interval: fast }\nvolumes: ["cache:/cache"]');
    expect(errors(text, 'weather.yaml')).toEqual([
      'weather.yaml: services.web.healthcheck.interval: expected a duration like 30s, 1m30s or 500ms, got "fast"',
      'weather.yaml: services.web.build: not supported (Berth deploys published images; build and push elsewhere, then reference the image)',
      'weather.yaml: services.web.volumes[0]: volume "cache" is not declared under top-level volumes (add volumes: {cache: {}})',
    ]);
  });

  it('reports problems in several services at once', () => {
    const text = `name: app\nversion: 1.0.0\nservices:\n  a: { image: registry.example.com/a:1, user: [1] }\n  b: { image: registry.example.com/b:1, restart: sometimes }\n`;
    const errs = errors(text);
    expect(errs).toHaveLength(2);
    expect(errs[0]).toMatch(/^m\.yaml: services\.a\.user: /);
    expect(errs[1]).toMatch(/^m\.yaml: services\.b\.restart: /);
  });

  it('gives YAML syntax errors with line:column', () => {
    const r = parseManifest('name: app\nversion: 1.0.0\nservices:\n  web: { image: x\n', 'broken.yaml');
    expect(r.ok).toBe(false);
    const issues = (r as { errors: ManifestIssue[] }).errors;
    expect(issues[0].line).toBeGreaterThanOrEqual(4);
    expect(formatIssue(issues[0])).toMatch(/^broken\.yaml:\d+:\d+: YAML: /);
  });

  it('refuses duplicate keys with their line', () => {
    const r = parseManifest('name: app\nversion: 1.0.0\nname: other\nservices: { a: { image: registry.example.com/a:1 } }\n', 'm.yaml');
    expect(r.ok ? '' : formatIssue(r.errors[0])).toMatch(/^m\.yaml:3:1: YAML: Map keys must be unique/);
  });

  it('quotes keys that would read ambiguously in a path', () => {
    expect(errors(withService('labels: { "com.example.x": [1] }'))[0]).toContain('services.web.labels["com.example.x"]: ');
  });
});

describe('manifestDigest, isPinned and pinManifest', () => {
  it('pins every image and changes the digest', () => {
    const m = ok(`name: app\nversion: 1.0.0\nservices:\n  a: { image: "registry.example.com/acme/a:1" }\n  b: { image: "busybox" }\n`);
    expect(isPinned(m)).toBe(false);
    const digests: Record<string, string> = { 'registry.example.com/acme/a:1': D1, busybox: D2 };
    const pinned = pinManifest(m, (image) => digests[image]);
    expect(pinned.services.a.image).toBe(`registry.example.com/acme/a@${D1}`);
    expect(pinned.services.b.image).toBe(`docker.io/library/busybox@${D2}`);
    expect(isPinned(pinned)).toBe(true);
    expect(manifestDigest(pinned)).not.toBe(manifestDigest(m));
    expect(() => pinManifest(m, () => undefined)).toThrow(/services\.a\.image: cannot pin/);
  });
});
