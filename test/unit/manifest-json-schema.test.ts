import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JSON_SCHEMA_FILE, manifestJsonSchema, manifestJsonSchemaText } from '../../manifests/json-schema.js';

const ROOT = join(import.meta.dirname, '../..');

describe('JSON Schema export', () => {
  it('the committed file is up to date (regenerate: npx berth manifest schema > manifests/berth-manifest.schema.json)', () => {
    expect(readFileSync(join(ROOT, JSON_SCHEMA_FILE), 'utf8')).toBe(manifestJsonSchemaText());
  });

  it('describes the input forms authors write', () => {
    const s = manifestJsonSchema() as { properties: Record<string, { additionalProperties?: { properties: Record<string, { anyOf?: unknown[] }> } }>; additionalProperties: boolean; patternProperties: object };
    const service = s.properties.services.additionalProperties!;
    expect(Object.keys(service.properties)).toEqual(
      expect.arrayContaining(['image', 'command', 'environment', 'network_mode', 'networks', 'ports', 'expose', 'volumes', 'tmpfs', 'devices', 'group_add', 'cap_add', 'cap_drop', 'privileged', 'sysctls', 'ulimits', 'shm_size', 'pid', 'ipc', 'security_opt', 'read_only', 'init', 'user', 'working_dir', 'entrypoint', 'stop_signal', 'stop_grace_period', 'hostname', 'extra_hosts', 'dns', 'mem_reservation', 'cpuset', 'logging', 'container_name', 'platform', 'pull_policy', 'healthcheck', 'depends_on', 'deploy', 'mem_limit']),
    );
    expect(service.properties.environment.anyOf).toHaveLength(2);
    expect(service.properties).not.toHaveProperty('build');
    expect(service.properties).not.toHaveProperty('profiles');
    expect(Object.keys(s.properties)).toContain('networks');
    expect(s.additionalProperties).toBe(false);
    expect(s.patternProperties).toEqual({ '^x-(?!berth$)': {} });
  });
});
