import { coreMigration } from './0001_core.js';
import { desiredIssuedMigration } from './0002_desired_issued.js';
import { campaignsMigration } from '../../campaigns/migration.js';

export interface Migration {
  /** Ordered, never renamed: the id is what schema_migrations remembers. */
  id: string;
  sql: string;
}

/** Applied in this order, each once, each in its own transaction. */
export const migrations: Migration[] = [
  coreMigration,
  campaignsMigration,
  desiredIssuedMigration,
];
