import type { Command } from '../context.js';
import { apply } from './apply.js';
import { audit } from './audit.js';
import { campaignCommands } from './campaign.js';
import { devicesImport, devicesLabel, devicesList, devicesRevoke, devicesShow } from './devices.js';
import { devicesAssign, devicesHistory, devicesRemove, devicesRollback } from './device-ops.js';
import { contextCommands } from './context.js';
import { login } from './login.js';
import { keygen } from './keygen.js';
import { keyCommands } from './keys.js';
import { manifestsDiff, manifestsList, manifestsSchema, manifestsShow, manifestsValidate } from './manifests.js';
import { tokenCommands } from './tokens.js';
import { warm } from './warm.js';
import { policyCommands } from './policies.js';
import { webhookCommands } from './webhooks.js';
import { fleetCommands } from './fleet.js';
import { logs } from './logs.js';
import { varsCommands } from './vars.js';
import { secretCommands } from './secrets.js';
import { complete, completion } from './completion.js';

/** A verb either is a command, or groups subcommands (`berth devices list`). */
export type Verb = Command | Record<string, Command>;

export const VERBS: Record<string, Verb> = {
  login,
  apply,
  manifests: { list: manifestsList, show: manifestsShow, diff: manifestsDiff, validate: manifestsValidate, schema: manifestsSchema },
  devices: { import: devicesImport, list: devicesList, show: devicesShow, label: devicesLabel, revoke: devicesRevoke, assign: devicesAssign, rollback: devicesRollback, history: devicesHistory, rm: devicesRemove },
  context: contextCommands,
  campaigns: campaignCommands,
  policies: policyCommands,
  webhooks: webhookCommands,
  fleet: fleetCommands,
  logs,
  vars: varsCommands,
  secrets: secretCommands,
  tokens: tokenCommands,
  keys: keyCommands,
  audit,
  keygen,
  // Spelled as before the verb moved out of registry-proxy/ (bin/berth.ts routes it here).
  'registry-proxy': { warm },
  completion,
  __complete: complete,
};

/**
 * Other spellings of a verb: nouns are plural (`berth devices list`, as kubectl reads them) and the
 * singular is accepted too; `berth manifest validate` was its own command before it joined `manifests`.
 */
export const ALIASES: Record<string, string> = {
  manifest: 'manifests',
  device: 'devices',
  campaign: 'campaigns',
  policy: 'policies',
  webhook: 'webhooks',
  var: 'vars',
  secret: 'secrets',
  token: 'tokens',
  key: 'keys',
  contexts: 'context',
};

export function aliasesOf(verb: string): string[] {
  return Object.keys(ALIASES).filter((a) => ALIASES[a] === verb);
}

export function verbNamed(name: string): Verb | undefined {
  return Object.hasOwn(VERBS, name) ? VERBS[name] : Object.hasOwn(ALIASES, name) ? VERBS[ALIASES[name]] : undefined;
}

export function isCommand(v: Verb): v is Command {
  return typeof (v as Command).run === 'function';
}
