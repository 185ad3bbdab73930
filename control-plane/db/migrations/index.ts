import { coreMigration } from './0001_core.js';
// CAMPAIGNS-MIGRATION: the campaigns teammate adds `import { campaignsMigration } from '../../campaigns/migration.js';` here.

export interface Migration {
  /** Ordered, never renamed: the id is what schema_migrations remembers. */
  id: string;
  sql: string;
}

/** Applied in this order, each once, each in its own transaction. */
export const migrations: Migration[] = [
  coreMigration,
  // CAMPAIGNS-MIGRATION: campaignsMigration,
];
