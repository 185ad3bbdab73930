import { z } from 'zod';
import { manifestInputSchema, serviceInputSchema } from './schema.js';

/** Where editors find the schema, relative to the package root (committed, kept current by a unit test). */
export const JSON_SCHEMA_FILE = 'manifests/berth-manifest.schema.json';

/**
 * The JSON Schema of the manifest as authors write it (the zod input schema), for editor completion.
 * The parser stays the authority: cross-key rules (declared volumes, depends_on targets, cycles) and
 * the exact forms of durations and sizes are only described here, not enforced.
 */
export function manifestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(manifestInputSchema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      // Compose extension keys (x-…) are the author's own at the top level and in services.
      if (ctx.zodSchema === manifestInputSchema || ctx.zodSchema === serviceInputSchema) {
        (ctx.jsonSchema as Record<string, unknown>).patternProperties = { '^x-(?!berth$)': {} };
      }
    },
  }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    title: 'Berth deployment manifest',
    description: 'A Docker Compose subset plus name and version. See manifests/README.md.',
    ...schema,
  };
}

export function manifestJsonSchemaText(): string {
  return JSON.stringify(manifestJsonSchema(), null, 2) + '\n';
}
