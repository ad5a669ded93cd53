import { TraitbaseError } from '../core/errors.js'
import type { Scope } from '../core/scopes.js'
import type { AttributeIndex, AttributeIndexKind } from './attribute-index.js'
import type { Condition } from '../core/segment.js'
import type { UploadBatch } from '../core/upload.js'

/** A project: the unit of isolation. Its numeric id leads every primary key (shard key for Citus). */
export interface Project {
  readonly id: number
  readonly name: string
  readonly createdAt: string
}

export interface NewKey {
  readonly projectId: number
  readonly label: string
  readonly scopes: readonly Scope[]
  /** SHA-256 of the secret, hex. The secret itself is never stored. */
  readonly hash: string
}

export interface KeyRecord {
  /** Public id, e.g. `key_3f9c0a1b2c4d`; safe to log and show. */
  readonly id: string
  readonly projectId: number
  readonly projectName: string
  readonly label: string
  readonly scopes: readonly Scope[]
  readonly hash: string
  /** ISO-8601 timestamps. */
  readonly createdAt: string
  readonly lastUsedAt: string | null
  readonly revokedAt: string | null
  /** Set by rotation: the key stops working at this time (ISO-8601); null = no expiry. */
  readonly expiresAt: string | null
  /** The project's own requests-per-minute limit per key (`projects rate-limit --project NAME LIMIT`); null: the server's `RATE_LIMIT`. */
  readonly projectRateLimit: number | null
}

export interface Profile {
  readonly userId: string
  /** Null-prototype record: `__proto__` is an ordinary attribute name. */
  readonly attributes: Record<string, string>
  /** ISO-8601 with milliseconds, UTC. */
  readonly createdAt: string
  readonly updatedAt: string
}

/** What an upload did, for metrics. */
export interface UploadOutcome {
  readonly created: number
  readonly updated: number
  /** Attribute values set (non-empty values). */
  readonly valuesWritten: number
}

/**
 * One page of the change feed that lets a process keep derived structures (the segment index)
 * exact while several processes write to one database. `upserts` hold the current state of every
 * profile changed since the token; `deletedUserIds` the users erased since. A page may repeat a
 * change already seen (applying it again is harmless) but never misses one.
 */
/**
 * A user's current attributes as the change feed delivers them: no timestamps, and `attributes` may
 * be the object JSON.parse made (its own keys are the attributes, `__proto__` included), so read it
 * with Object.keys or a typeof check, never by trusting `in` or inherited members. Loading a
 * million users skips a copy and two date conversions per user this way.
 */
export interface ProfileState {
  readonly userId: string
  readonly attributes: Readonly<Record<string, string>>
}

export interface ChangePage {
  /** True when the feed starts over (first read, or the log was pruned past the token): drop what you hold first. */
  readonly reset: boolean
  readonly upserts: readonly ProfileState[]
  readonly deletedUserIds: readonly string[]
}

export interface ChangeFeed {
  /** Pages in order; apply deletions of a page before its upserts. */
  readonly pages: AsyncIterable<ChangePage>
  /** Valid after `pages` is exhausted: pass it to the next `readChanges`. Opaque. */
  token(): string
}

export interface SavedSegment {
  /** Public id, e.g. `seg_9a8b7c6d5e4f`. */
  readonly id: string
  readonly name: string
  /** The condition as the client sent it (JSON), re-parsed when used. */
  readonly where: unknown
  readonly createdAt: string
  readonly updatedAt: string
}

/**
 * A claim on an `Idempotency-Key` (IETF httpapi idempotency-key draft), scoped to a project.
 * Times come from the caller's clock so one rule decides expiry on every backend.
 */
export interface IdempotencyClaim {
  readonly projectId: number
  /** The client's key, 1-255 printable ASCII characters. */
  readonly key: string
  /** Digest of the request body: the same key with another body is refused. */
  readonly fingerprint: string
  readonly now: Date
  /** An entry created before this has expired: the key is free again (24 h after its first use). */
  readonly expiredBefore: Date
  /** An entry still in flight since before this was abandoned by a process that died: it may be taken over. */
  readonly abandonedBefore: Date
}

/** What `claimIdempotencyKey` found. */
export type IdempotencyState =
  /** The key was free (or expired, or abandoned): the caller owns it until it completes or releases it. */
  | { readonly kind: 'claimed' }
  /** The first request with this key is still running. */
  | { readonly kind: 'in_flight' }
  /** The key was used with another body. */
  | { readonly kind: 'mismatch' }
  /** The first request completed: replay its answer. */
  | { readonly kind: 'completed'; readonly status: number; readonly body: string }

/** Options of `openStore` and the backend constructors. */
export interface StoreOptions {
  /**
   * Write the change log that `readChanges` serves (the segment index needs it). Default `true`;
   * `false` only for the "without segment support" benchmark baseline.
   */
  readonly changeLog?: boolean
  /**
   * How long change-log entries are kept; a reader whose token is older starts over with a reset.
   * Default 10 minutes (readers poll every few seconds; a full reset of 1M users takes seconds,
   * while the log grows by ~50 bytes per written user). 0 disables automatic pruning.
   */
  readonly changeRetentionMs?: number
  /** Pause between automatic prunes. Default 60,000 ms. */
  readonly pruneIntervalMs?: number
  /** PostgreSQL: connections in this process's pool (default 12). Total = pool size × processes. */
  readonly poolSize?: number
  /** PostgreSQL: longest wait to connect or for a free pooled connection, then an error (a 503). Default 0: no limit. */
  readonly connectTimeoutMs?: number
  /** PostgreSQL: longest a statement may run, then an error (a 503). Default 0: no limit. */
  readonly statementTimeoutMs?: number
  /**
   * PostgreSQL behind PgBouncer: PgBouncer refuses a `statement_timeout` startup parameter, so only the
   * client-side timeout applies (set the server-side one on the role: `ALTER ROLE … SET statement_timeout`).
   */
  readonly pgbouncer?: boolean
}

/** Default of {@link StoreOptions.changeRetentionMs}. */
export const DEFAULT_CHANGE_RETENTION_MS = 10 * 60 * 1000

export interface ScanOptions {
  /** Only profiles matching this condition; all when absent. Compiled to SQL with bound parameters. */
  readonly where?: Condition
  /** Keyset: only user ids strictly after this one (code point order). */
  readonly afterUserId?: string
  readonly limit: number
}

/** The only storage type server/ and cli/ import. Every method is atomic on its own. */
export interface Store extends AdminStore {
  /** `sqlite` or `postgres`, for logs and /healthz. */
  readonly kind: 'sqlite' | 'postgres'
  /** Creates or upgrades the schema. Safe when several processes call it at once. */
  migrate(): Promise<void>
  close(): Promise<void>
  /** Throws when the database does not answer. */
  ping(): Promise<void>

  /** Returns the project with this name, creating it if new. */
  ensureProject(name: string): Promise<Project>
  findProject(name: string): Promise<Project | undefined>
  /**
   * Sets the project's requests-per-minute limit per key (null: back to the server's `RATE_LIMIT`,
   * 0: unlimited). Undefined when there is no such project.
   */
  setProjectRateLimit(
    name: string,
    perMinute: number | null,
  ): Promise<{ project: Project; rateLimit: number | null } | undefined>
  /**
   * The project's IANA time zone (default `UTC`): bare dates in segment conditions and stored
   * values are local midnight there, and days/weeks/months step in its calendar. Undefined when
   * there is no such project.
   */
  getProjectTimeZone(projectId: number): Promise<string | undefined>
  /**
   * Sets the project's time zone to an IANA name, stored in canonical spelling (`asia/tokyo` →
   * `Asia/Tokyo`), which is returned; undefined when there is no such project. A name that is not a
   * time zone throws a VALIDATION_FAILED TraitbaseError (path `time_zone`) and changes nothing.
   */
  setProjectTimeZone(projectId: number, timeZone: string): Promise<string | undefined>
  createKey(input: NewKey): Promise<KeyRecord>
  listKeys(projectId: number): Promise<KeyRecord[]>
  /** Sets `revoked_at`; false when no such key or already revoked. */
  revokeKey(keyId: string): Promise<boolean>
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>
  touchKey(keyId: string, at: Date): Promise<void>

  /** Applies every patch of the batch or none: one transaction. Durable when it resolves. */
  applyUpload(projectId: number, batch: UploadBatch): Promise<UploadOutcome>
  getProfile(projectId: number, userId: string): Promise<Profile | undefined>
  /** Erases the user and its attributes; false when there was no such user. */
  deleteProfile(projectId: number, userId: string): Promise<boolean>

  /** Profiles in ascending user_id (code point) order, optionally filtered: the SQL path of segments and export. */
  scanProfiles(projectId: number, options: ScanOptions): Promise<Profile[]>
  /** Exact number of profiles matching `where` (all when absent). */
  countProfiles(projectId: number, where?: Condition): Promise<number>

  /**
   * The project's attribute indexes (attribute-index.ts), by name then kind. With one, the database
   * path answers that attribute's conditions (`text`: eq, neq, in, not_in, exists, not_exists;
   * `number`: gt, gte, lt, lte) from the index instead of scanning the project; answers are the same.
   */
  listAttributeIndexes(projectId: number): Promise<AttributeIndex[]>
  /**
   * Builds the index (nothing when it exists: `created` false). Slow on a big project: SQLite holds
   * the database's write lock while it builds (other writers wait); PostgreSQL fills a `text` index's
   * side table while that project's writers wait (postgres/attribute-values.ts) and builds a
   * `number` index (and on Citus, every index) CONCURRENTLY, writes going on. An admin operation (CLI), never run on a server's event loop. A bad name or kind
   * is a BAD_REQUEST TraitbaseError; an unknown project a NOT_FOUND one; nothing changes then.
   */
  createAttributeIndex(
    projectId: number,
    name: string,
    kind: AttributeIndexKind,
  ): Promise<{ index: AttributeIndex; created: boolean }>
  /** Drops the index; false when there was none. */
  dropAttributeIndex(projectId: number, name: string, kind: AttributeIndexKind): Promise<boolean>

  createSegment(projectId: number, name: string, where: unknown): Promise<SavedSegment>
  listSegments(projectId: number): Promise<SavedSegment[]>
  getSegment(projectId: number, id: string): Promise<SavedSegment | undefined>
  /** Undefined when there is no such segment in this project. */
  updateSegment(projectId: number, id: string, name: string, where: unknown): Promise<SavedSegment | undefined>
  deleteSegment(projectId: number, id: string): Promise<boolean>

  /**
   * Claims an idempotency key atomically, so of two requests racing with one key (on any process)
   * exactly one gets `claimed`.
   */
  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyState>
  /** Records the answer of a claimed key, for replays. */
  completeIdempotencyKey(projectId: number, key: string, status: number, body: string): Promise<void>
  /** Frees a claimed key that did not complete (the request failed), so a retry runs again. */
  releaseIdempotencyKey(projectId: number, key: string): Promise<void>
  /** Deletes entries created before `olderThan` (every project). Returns how many. */
  pruneIdempotencyKeys(olderThan: Date): Promise<number>

  /** Changes since `token` (null: everything), streamed in pages. See ChangePage. */
  readChanges(projectId: number, token: string | null): ChangeFeed
  /**
   * Deletes change-log entries written before `olderThan` (all projects) and moves the horizon past
   * them: a later `readChanges` with a token older than the horizon answers `reset: true`. Returns
   * the number of entries deleted.
   */
  pruneChanges(olderThan: Date): Promise<number>
}

// ---- Administration (issue 8): projects, key life cycle, admin credentials, request log ----

/** A project as the admin API lists it. */
export interface ProjectSummary extends Project {
  /** Profiles stored now. */
  readonly users: number
  /** Last successful (non-dry-run) upload, ISO-8601; written with the request log, so null while it is off. */
  readonly lastUploadAt: string | null
}

/** What happened to a key, kept for audit. */
export type KeyEventKind = 'created' | 'rotated' | 'revoked'

export interface NewKeyEvent {
  readonly projectId: number
  readonly keyId: string
  readonly event: KeyEventKind
  /** Who did it: `session`, `token:<id>` or `cli`. */
  readonly actor: string
  /** Free text, e.g. `replaced by key_…; old key expires 2026-…`. */
  readonly detail?: string
}

export interface KeyEvent extends NewKeyEvent {
  readonly id: number
  readonly at: string
  readonly detail: string
}

/** An admin API token (`tba_…`); like API keys only the hash is stored. */
export interface AdminToken {
  readonly id: string
  readonly label: string
  readonly hash: string
  readonly createdAt: string
  readonly lastUsedAt: string | null
  readonly revokedAt: string | null
}

/** A console session; the cookie holds the secret, the database its SHA-256 (`idHash`). */
export interface AdminSession {
  readonly idHash: string
  readonly csrfToken: string
  readonly createdAt: string
  readonly expiresAt: string
}

/** One `/v1` call, as the request log stores it. `time` in ms since the epoch when written. */
export interface RequestLogEntry {
  readonly projectId: number
  readonly time: number
  readonly method: string
  readonly path: string
  readonly keyId: string | null
  readonly keyLabel: string | null
  readonly requestId: string
  readonly status: number
  readonly durationMs: number
  readonly usersCreated: number | null
  readonly usersUpdated: number | null
  /** The exact `msg` of a failure; null on success. */
  readonly error: string | null
  readonly dryRun: boolean
  /** A successful real upload: moves the project's `last_upload_at`. */
  readonly upload: boolean
}

export interface RequestLogRecord extends Omit<RequestLogEntry, 'time' | 'upload'> {
  readonly id: number
  /** ISO-8601. */
  readonly time: string
}

export interface RequestLogQuery {
  /** 2, 4 or 5: only statuses of that class. */
  readonly statusClass?: number
  readonly keyId?: string
  /** Only entries with a smaller id (paging back). */
  readonly before?: number
  /** Only entries with a larger id (polling for new ones). */
  readonly after?: number
  readonly limit: number
}

export interface UserSummary {
  readonly userId: string
  readonly createdAt: string
  readonly updatedAt: string
}

export interface ListUsersOptions {
  /** Only user ids starting with this (code points). */
  readonly prefix?: string
  /** Keyset: only user ids strictly after this one. */
  readonly afterUserId?: string
  readonly limit: number
}

/** The administration part of the store: what the admin API, its auth and the CLI need. */
export interface AdminStore {
  listProjects(): Promise<ProjectSummary[]>
  getProject(id: number): Promise<Project | undefined>
  /** CONFLICT when the name exists. */
  createProject(name: string): Promise<Project>
  /** Undefined when no such project; CONFLICT when another project has the name. */
  renameProject(id: number, name: string): Promise<Project | undefined>

  getKey(keyId: string): Promise<KeyRecord | undefined>
  /**
   * Atomically: creates `replacement` and sets the old key's `expires_at` (kept if it is earlier).
   * Undefined when the old key does not exist in this project; CONFLICT when it is revoked or expired.
   */
  rotateKey(
    projectId: number,
    keyId: string,
    replacement: NewKey,
    expiresAt: Date,
  ): Promise<{ key: KeyRecord; previous: KeyRecord } | undefined>
  addKeyEvent(event: NewKeyEvent): Promise<void>
  /** Newest first. */
  listKeyEvents(projectId: number, limit: number): Promise<KeyEvent[]>

  getSetting(name: string): Promise<string | undefined>
  setSetting(name: string, value: string): Promise<void>

  createAdminToken(input: { label: string; hash: string }): Promise<AdminToken>
  findAdminTokenByHash(hash: string): Promise<AdminToken | undefined>
  listAdminTokens(): Promise<AdminToken[]>
  revokeAdminToken(id: string): Promise<boolean>
  touchAdminToken(id: string, at: Date): Promise<void>

  createSession(session: { idHash: string; csrfToken: string; expiresAt: Date }): Promise<void>
  findSession(idHash: string): Promise<AdminSession | undefined>
  extendSession(idHash: string, expiresAt: Date): Promise<void>
  deleteSession(idHash: string): Promise<void>
  /** Signs everybody out (after a password change). */
  deleteAllSessions(): Promise<void>

  recordLoginFailure(ip: string, at: Date): Promise<void>
  /** Failures since `since`: from `ip`, or from everywhere when `ip` is null; with the oldest's time. */
  countLoginFailures(ip: string | null, since: Date): Promise<{ count: number; oldest: string | null }>
  clearLoginFailures(ip: string): Promise<void>

  /** One insert for many entries; also moves `last_upload_at` of projects with successful uploads. */
  appendRequestLog(entries: readonly RequestLogEntry[]): Promise<void>
  /** Newest first. */
  listRequestLog(projectId: number, query: RequestLogQuery): Promise<RequestLogRecord[]>
  /**
   * Keeps at most `maxPerProject` newest entries per project and none older than `olderThan`; also
   * drops expired sessions and old login failures. Returns the number of log entries deleted.
   */
  pruneAdminData(options: { maxPerProject: number; olderThan: Date; now: Date }): Promise<number>

  listUsers(projectId: number, options: ListUsersOptions): Promise<UserSummary[]>
}

/**
 * Thrown by `readChanges` for a project spread over several workers (`traitbase projects spread`,
 * Citus): it has no change feed, so no in-memory segment index; its segments are counted and paged
 * by the database path (every worker scans its part in parallel), which is exact by construction.
 * A 409 where the index itself is needed (the attribute catalog).
 */
export class ProjectNotIndexedError extends TraitbaseError {
  constructor(projectId: number) {
    super(
      'CONFLICT',
      `Project ${projectId} is spread over several database workers: it has no in-memory segment index, so no attribute catalog (segment counts and pages come from the database; name the fields of a CSV export)`,
    )
    this.name = 'ProjectNotIndexedError'
  }
}
