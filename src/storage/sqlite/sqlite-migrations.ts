import type { Migration } from '../migration.js'

/**
 * The SQLite schema. Every primary key leads with `project_id`, like the PostgreSQL one.
 * `profiles` is WITHOUT ROWID and has no secondary index: the row lives in the primary-key b-tree,
 * so an upsert dirties one leaf page per user instead of one per b-tree (see the measurements note).
 * `profiles.attributes` holds SQLite JSONB (binary JSON merged with `jsonb_patch`, which skips
 * re-parsing the stored document; text JSON is read and merged the same way).
 * Timestamps are integer milliseconds since the epoch (UTC).
 */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    id: '0001_initial',
    sql: `
CREATE TABLE projects (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  change_seq INTEGER NOT NULL DEFAULT 0,
  pruned_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
  project_id INTEGER NOT NULL,
  id TEXT NOT NULL,
  hash TEXT NOT NULL,
  label TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER,
  PRIMARY KEY (project_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);
CREATE TABLE profiles (
  project_id INTEGER NOT NULL,
  user_id TEXT NOT NULL,
  attributes TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, user_id)
) WITHOUT ROWID;
CREATE TABLE segments (
  project_id INTEGER NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  where_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, id)
) WITHOUT ROWID;
CREATE TABLE change_log (
  project_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  user_id TEXT NOT NULL,
  changed_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;
`,
  },
  {
    // The project's time zone: bare dates are midnight there, and days/weeks/months step in its calendar.
    id: '0002_dates',
    sql: `ALTER TABLE projects ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';`,
  },
]
