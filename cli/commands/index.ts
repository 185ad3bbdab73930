import type { Command } from '../context.js';
import { apply } from './apply.js';
import { audit } from './audit.js';
import { campaignCommands } from './campaign.js';
import { devicesImport, devicesLabel, devicesList, devicesRevoke, devicesShow } from './devices.js';
import { login } from './login.js';
import { manifestsDiff, manifestsList, manifestsShow } from './manifests.js';
import { tokenCommands } from './tokens.js';

/** A verb either is a command, or groups subcommands (`berth devices list`). */
export type Verb = Command | Record<string, Command>;

export const VERBS: Record<string, Verb> = {
  login,
  apply,
  manifests: { list: manifestsList, show: manifestsShow, diff: manifestsDiff },
  devices: { import: devicesImport, list: devicesList, show: devicesShow, label: devicesLabel, revoke: devicesRevoke },
  campaign: campaignCommands,
  tokens: tokenCommands,
  audit,
};

export function isCommand(v: Verb): v is Command {
  return typeof (v as Command).run === 'function';
}
