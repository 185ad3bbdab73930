import type { z } from 'zod';
import type { Api, Reply, Route } from './route.js';

/**
 * Does an answer match what the contract says of it? The schema's own parse finds missing and
 * wrong fields; a walk over the schema finds fields it does not describe (zod strips those when
 * parsing, but /openapi.json promises `additionalProperties: false`, so an extra field is a lie).
 */

type AnySchema = z.core.$ZodType;

function pathText(path: readonly PropertyKey[]): string {
  return path.length ? path.map(String).join('.') : '(the body)';
}

/** The first field, depth first, that the value has and the schema does not describe. */
export function undescribedField(schema: AnySchema, value: unknown, path: PropertyKey[] = []): string | null {
  const def = schema._zod.def;
  switch (def.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
      const obj = schema as z.core.$ZodObject;
      const shape = obj._zod.def.shape;
      const open = obj._zod.def.catchall !== undefined && obj._zod.def.catchall._zod.def.type !== 'never';
      for (const [key, v] of Object.entries(value)) {
        const field = Object.hasOwn(shape, key) ? shape[key] : undefined;
        if (!field) {
          if (!open) return pathText([...path, key]);
          continue;
        }
        const inner = undescribedField(field, v, [...path, key]);
        if (inner) return inner;
      }
      return null;
    }
    case 'array': {
      if (!Array.isArray(value)) return null;
      const element = (schema as z.core.$ZodArray)._zod.def.element;
      for (let i = 0; i < value.length; i++) {
        const inner = undescribedField(element, value[i], [...path, i]);
        if (inner) return inner;
      }
      return null;
    }
    case 'record': {
      if (typeof value !== 'object' || value === null) return null;
      const valueType = (schema as z.core.$ZodRecord)._zod.def.valueType;
      for (const [key, v] of Object.entries(value)) {
        const inner = undescribedField(valueType, v, [...path, key]);
        if (inner) return inner;
      }
      return null;
    }
    case 'union': {
      // The option the value really is: the first that parses it, as zod picks.
      const option = (schema as z.core.$ZodUnion)._zod.def.options.find((o) => safeParses(o, value));
      return option ? undescribedField(option, value, path) : null;
    }
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      if (value === undefined || value === null) return null;
      return undescribedField((schema as z.core.$ZodOptional)._zod.def.innerType, value, path);
    case 'pipe':
      // The wire carries the pipe's input.
      return undescribedField((schema as z.core.$ZodPipe)._zod.def.in, value, path);
    case 'lazy':
      return undescribedField((schema as z.core.$ZodLazy)._zod.def.getter(), value, path);
    default:
      return null;
  }
}

function safeParses(schema: AnySchema, value: unknown): boolean {
  return (schema as z.ZodType).safeParse(value).success;
}

/** Why a JSON value does not match a schema (naming the field), or null when it does. */
export function schemaMismatch(schema: z.ZodType, value: unknown): string | null {
  const res = schema.safeParse(value);
  if (!res.success) {
    const issue = res.error.issues[0];
    return `${pathText(issue.path)}: ${issue.message}`;
  }
  const extra = undescribedField(schema, value);
  return extra ? `${extra}: not described by the contract` : null;
}

export interface Answer {
  status: number;
  /** The Content-Type header, or null. */
  contentType: string | null;
  /** The body as text ('' when none). */
  body: string;
}

function replyMismatch(reply: Reply, answer: Answer): string | null {
  if (reply.kind === 'empty') return answer.body === '' ? null : 'has a body where the contract says none';
  if (reply.kind === 'text') {
    const type = answer.contentType?.split(';')[0].trim() ?? '';
    return reply.types.includes(type) ? null : `is ${type || 'untyped'}, the contract says ${reply.types.join(' or ')}`;
  }
  if (!answer.contentType?.includes('application/json')) return `is ${answer.contentType ?? 'untyped'}, the contract says application/json`;
  let value: unknown;
  try {
    value = JSON.parse(answer.body);
  } catch {
    return 'is not valid JSON';
  }
  return schemaMismatch(reply.schema, value);
}

/**
 * Checks one answer of a route against the contract: a listed status must match its reply; any other
 * 4xx/5xx must at least be the service's error envelope; any other success status is undescribed.
 */
export function answerMismatch(api: Pick<Api, 'error'>, route: Route | undefined, answer: Answer): string | null {
  const reply = route?.responses[answer.status];
  if (reply) return replyMismatch(reply, answer);
  if (answer.status >= 400) return replyMismatch({ kind: 'json', description: 'refused', schema: api.error }, answer);
  return route ? `status ${answer.status} is not one the contract lists (${Object.keys(route.responses).join(', ')})` : null;
}
