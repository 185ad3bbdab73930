import { describe, expect, it } from 'vitest';
import { formatIssue, parseManifest } from '../../manifests/parse.js';
import { parseTemplate, substituteString, substituteVariables, variableNeeds } from '../../manifests/variables.js';

function withService(extra: string): string {
  const indented = extra.split('\n').map((l) => (l ? '    ' + l : l)).join('\n');
  return `name: app\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web:1.0\n${indented}\n`;
}

function errors(text: string): string[] {
  const r = parseManifest(text, 'm.yaml');
  if (r.ok) throw new Error('expected the manifest to be refused');
  return r.errors.map((e) => formatIssue({ ...e, line: undefined, column: undefined }));
}

const sub = (s: string, values: Record<string, string>) => substituteString(s, values);

describe('the interpolation grammar (Compose)', () => {
  it('substitutes ${NAME} with the value, even an empty one', () => {
    expect(sub('site-${SITE}', { SITE: 'berlin' })).toEqual({ value: 'site-berlin' });
    expect(sub('[${SITE}]', { SITE: '' })).toEqual({ value: '[]' });
    expect(sub('${SITE}', {})).toEqual({ missing: [{ name: 'SITE', reason: 'not set and no default' }] });
  });

  it('reads :- as "unset or empty" and - as "unset" only', () => {
    expect(sub('${A:-d}', {})).toEqual({ value: 'd' });
    expect(sub('${A:-d}', { A: '' })).toEqual({ value: 'd' });
    expect(sub('${A-d}', { A: '' })).toEqual({ value: '' });
    expect(sub('${A-d}', {})).toEqual({ value: 'd' });
    expect(sub('${A:-d}', { A: 'x' })).toEqual({ value: 'x' });
  });

  it('reads :? and ? as required, with the message as the reason', () => {
    expect(sub('${A:?set the broker}', { A: '' })).toEqual({ missing: [{ name: 'A', reason: 'set the broker' }] });
    expect(sub('${A?}', { A: '' })).toEqual({ value: '' });
    expect(sub('${A?}', {})).toEqual({ missing: [{ name: 'A', reason: 'not set' }] });
  });

  it('reads :+ and + as the alternative when set', () => {
    expect(sub('${A:+on}', { A: 'x' })).toEqual({ value: 'on' });
    expect(sub('${A:+on}', { A: '' })).toEqual({ value: '' });
    expect(sub('${A+on}', { A: '' })).toEqual({ value: 'on' });
    expect(sub('${A+on}', {})).toEqual({ value: '' });
  });

  it('reads $$ as a literal $ and never substitutes a value twice', () => {
    expect(sub('$${A} costs $$5 ${A}', { A: '${B}' })).toEqual({ value: '${A} costs $5 ${B}' });
    expect(sub('100$ and $1', {})).toEqual({ value: '100$ and $1' });
  });

  it('refuses what it cannot read, saying what was expected', () => {
    expect(parseTemplate('${A')).toEqual({ error: 'unterminated ${A: expected ${NAME}, ${NAME:-default} or ${NAME:?message}' });
    expect(parseTemplate('${1A}')).toMatchObject({ error: expect.stringContaining('${1A} is not a variable reference') });
    expect(parseTemplate('${A:-${B}}')).toMatchObject({ error: expect.stringContaining('cannot hold another variable') });
    expect(parseTemplate('$HOME')).toMatchObject({ error: expect.stringContaining('write ${HOME} for a Berth variable, or $$HOME') });
  });

  it('keeps, leniently, what publish would refuse (manifests published before variables)', () => {
    expect(sub('echo $HOME ${', {})).toEqual({ value: 'echo $HOME ${' });
  });

  it('lists what a manifest needs: required unless every use has a default', () => {
    const needs = variableNeeds({ services: { a: { environment: { X: '${SITE}', Y: '${BROKER:-mqtt:1883}', Z: '${TOKEN:?ask ops}' } }, b: { command: ['${BROKER}'] } } });
    expect(needs).toEqual([
      { name: 'BROKER', required: true, default: 'mqtt:1883', paths: ['services.a.environment.Y', 'services.b.command[0]'] },
      { name: 'SITE', required: true, paths: ['services.a.environment.X'] },
      { name: 'TOKEN', required: true, message: 'ask ops', paths: ['services.a.environment.Z'] },
    ]);
  });

  it('substitutes values, never keys, and reports every unresolved reference', () => {
    const spec = { services: { web: { environment: { '${K}': '${A}', B: '${B}-${C:-c}' } } } };
    expect(substituteVariables(spec, { A: '1', B: '2' })).toEqual({ value: { services: { web: { environment: { '${K}': '1', B: '2-c' } } } } });
    expect(substituteVariables(spec, {})).toEqual({
      unresolved: [
        { name: 'A', path: 'services.web.environment["${K}"]', reason: 'not set and no default' },
        { name: 'B', path: 'services.web.environment.B', reason: 'not set and no default' },
      ],
    });
  });
});

describe('variables in a manifest', () => {
  it('publishes ${…} as written, in any plain string', () => {
    const r = parseManifest(withService('environment: { SITE: "${SITE}", URL: "mqtt://${BROKER:-localhost}:1883" }\ncommand: ["run", "--site=${SITE}"]\nlabels: { site: "${SITE}" }'), 'm.yaml');
    if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
    expect(r.manifest.services.web.environment).toEqual({ SITE: '${SITE}', URL: 'mqtt://${BROKER:-localhost}:1883' });
    expect(variableNeeds(r.manifest).map((n) => n.name)).toEqual(['BROKER', 'SITE']);
  });

  it.each([
    ['a device path', 'devices: ["${PORT}:/dev/zigbee"]', 'services.web.devices[0]'],
    ['a bind source', 'volumes: ["${DIR}:/data"]', 'services.web.volumes[0]'],
    ['a long-form bind source', 'volumes: [{ type: bind, source: "/srv/${SITE}", target: /data }]', 'services.web.volumes[0].source'],
    ['a capability', 'cap_add: ["${CAP}"]', 'services.web.cap_add[0]'],
    ['network_mode', 'network_mode: "${MODE}"', 'services.web.network_mode'],
    ['a published port', 'ports: ["${PORT}:80"]', 'services.web.ports[0]'],
    ['a sysctl value', 'sysctls: { net.core.somaxconn: "${N}" }', 'services.web.sysctls["net.core.somaxconn"]'],
    ['a group', 'group_add: ["${GROUP}"]', 'services.web.group_add[0]'],
    ['security_opt', 'security_opt: ["${OPT}"]', 'services.web.security_opt[0]'],
  ])('refuses a variable in %s, naming the path', (_what, yaml, path) => {
    expect(errors(withService(yaml))).toContain(`m.yaml: ${path}: a $ is not allowed here (a variable may never widen privileges: the privilege policy governs this key); write the value`);
  });

  it('refuses a variable in the image, which publish pins', () => {
    expect(errors(withService('').replace('web:1.0', 'web:${TAG}'))[0]).toBe('m.yaml: services.web.image: a $ is not allowed here (image is fixed when the manifest is published); write the value');
  });

  it('explains a variable where Berth must read the value', () => {
    expect(errors(withService('stop_grace_period: "${GRACE}"'))[0]).toContain('(a ${…} variable is substituted per device, so it may stand only where any text is valid');
  });

  it('refuses a reference split by a command string, and a malformed one, with its path', () => {
    expect(errors(withService('command: run ${A:-a b}'))).toContain('m.yaml: services.web.command: ${A:-a b}: a variable in a command string cannot hold spaces or quotes; write the command as a list');
    expect(errors(withService('environment: { A: "${A" }'))).toContain('m.yaml: services.web.environment.A: unterminated ${A: expected ${NAME}, ${NAME:-default} or ${NAME:?message}');
  });
});
