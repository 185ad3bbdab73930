import { readFile } from 'node:fs/promises';
import type { Service } from '../../manifests/model.js';
import { formatPrivilege, lacking, parseAllowance, privilegesOf, type Allowance, type Privilege } from '../../manifests/privileges.js';
import type { ReadDocument } from '../policy/accept.js';

/**
 * The gateway's own ceiling (`berth edge-daemon --allow FILE`): what whoever installed the gateway
 * lets any signed document ask for, in the grammar of `berth policies set --allow`, one
 * `KEY=VALUE[,VALUE…]` per line. A key missing from the file allows nothing of its kind, so a
 * compromised control plane cannot take more than the owner granted. Without the flag there is no
 * ceiling (the fleet's policies still apply before any rollout).
 */

export class CeilingFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CeilingFileError';
  }
}

export async function loadCeiling(path: string): Promise<Allowance> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CeilingFileError(`--allow ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const lines = text.split('\n');
  const r = parseAllowance(lines);
  if ('errors' in r) throw new CeilingFileError(`--allow ${path}: ${r.errors.map((e) => e.replace(/^entry (\d+)/, 'line $1')).join('; ')}`);
  return r.allow;
}

function describe(over: Privilege[]): string {
  return over.map((p) => `${formatPrivilege(p)} (${p.services.join(', ')})`).join(', ');
}

/** A valid document that asks for more than the ceiling becomes a refusal naming what exceeded it. */
export function withinCeiling(document: ReadDocument, ceiling: Allowance | undefined): ReadDocument {
  if (!ceiling || document.kind !== 'valid') return document;
  const over = lacking(privilegesOf(document.release.spec), [ceiling]);
  if (!over.length) return document;
  const { name, version } = document.release;
  return {
    kind: 'invalid',
    reason: 'beyond-ceiling',
    message: `deployment document refused (beyond-ceiling): ${name}@${version} asks for privileges this gateway's --allow file does not grant: ${describe(over)}`,
  };
}

/** The executor's last check before a container is created (a release adopted before the ceiling was tightened). */
export function serviceBeyondCeiling(name: string, service: Service, ceiling: Allowance | undefined): string | undefined {
  if (!ceiling) return undefined;
  const over = lacking(privilegesOf({ name: 'x', version: '0.0.0', services: { [name]: service }, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1 } }), [ceiling]);
  return over.length ? `service ${name} asks for privileges this gateway's --allow file does not grant: ${describe(over)}` : undefined;
}
