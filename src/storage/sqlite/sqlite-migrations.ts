import type { Migration } from '../migration.js'

/**
 * The SQLite schema. Every primary key leads with `project_id`, like the PostgreSQL one.
 * `profiles` was WITHOUT ROWID until 0004_profiles_rowid, which made it a rowid table (see there).
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
    // Issue 8: the admin API and console. Request-log ids are global (rowid) so a poll's `after` works
    // across projects; rows are looked up by (project_id, id). `projects.users` is kept by every write
    // (in the same transaction), because counting a million-user project would hold the event loop.
    id: '0002_admin',
    sql: `
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE projects ADD COLUMN last_upload_at INTEGER;
ALTER TABLE projects ADD COLUMN users INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET users = (SELECT count(*) FROM profiles WHERE profiles.project_id = projects.id);
CREATE TABLE key_events (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  event TEXT NOT NULL,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX key_events_project ON key_events (project_id, id);
CREATE TABLE admin_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE admin_tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER
);
CREATE TABLE admin_sessions (
  id_hash TEXT PRIMARY KEY,
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE admin_login_failures (ip TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX admin_login_failures_ip ON admin_login_failures (ip, at);
CREATE INDEX admin_login_failures_at ON admin_login_failures (at);
CREATE TABLE request_log (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL,
  time INTEGER NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  key_id TEXT,
  key_label TEXT,
  request_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  users_created INTEGER,
  users_updated INTEGER,
  error TEXT,
  dry_run INTEGER NOT NULL
);
CREATE INDEX request_log_project ON request_log (project_id, id);
CREATE INDEX request_log_time ON request_log (time);
`,
  },
  {
    // Idempotency-Key records (POST /v1/user/profiles); see the PostgreSQL migration of the same id.
    id: '0002_idempotency',
    sql: `
CREATE TABLE idempotency_keys (
  project_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER,
  response TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
`,
  },
  {
    // A project's own rate limit per key (requests per minute); NULL: the server's RATE_LIMIT.
    id: '0002_project_rate_limit',
    sql: `ALTER TABLE projects ADD COLUMN rate_limit INTEGER CHECK (rate_limit >= 0);`,
  },
  {
    // The project's time zone: bare dates are midnight there, and days/weeks/months step in its calendar.
    id: '0002_dates',
    sql: `ALTER TABLE projects ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';`,
  },
  {
    // Issue 7: the attributes a project has a database index on (the indexes themselves are
    // created and dropped by the store, one partial expression index per row; see attribute-index.ts).
    id: '0003_attribute_indexes',
    sql: `
CREATE TABLE attribute_indexes (
  project_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('text', 'number')),
  index_name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, name, kind)
) WITHOUT ROWID;
`,
  },
  {
    // Issue 7: `profiles` becomes a rowid table (its key (project_id, user_id) now a unique index).
    // In a WITHOUT ROWID table SQLite checks every row an expression index returns against the table
    // (a `NotFound` seek per matching row, even for a count the index covers), so an attribute index
    // could not count `eq` faster than a scan (~2–3 µs per row). A rowid table's index entries carry
    // the rowid and the seek is deferred until a column is read, so counts and `all`-of-`eq` probes
    // come from the attribute indexes alone (bench:attribute-indexes). Rows are copied in key order,
    // so the rowids of a project's existing users follow user_id. Attribute indexes go with the old
    // table; the store recreates them from `attribute_indexes` right after migrating.
    id: '0004_profiles_rowid',
    sql: `
CREATE TABLE profiles_rowid (
  project_id INTEGER NOT NULL,
  user_id TEXT NOT NULL,
  attributes TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, user_id)
);
INSERT INTO profiles_rowid (project_id, user_id, attributes, created_at, updated_at)
  SELECT project_id, user_id, attributes, created_at, updated_at FROM profiles ORDER BY project_id, user_id;
DROP TABLE profiles;
ALTER TABLE profiles_rowid RENAME TO profiles;
`,
  },
]
