import type { Scope } from '../core/scopes.js'
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
export interface Store {
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

  createSegment(projectId: number, name: string, where: unknown): Promise<SavedSegment>
  listSegments(projectId: number): Promise<SavedSegment[]>
  getSegment(projectId: number, id: string): Promise<SavedSegment | undefined>
  /** Undefined when there is no such segment in this project. */
  updateSegment(projectId: number, id: string, name: string, where: unknown): Promise<SavedSegment | undefined>
  deleteSegment(projectId: number, id: string): Promise<boolean>

  /** Changes since `token` (null: everything), streamed in pages. See ChangePage. */
  readChanges(projectId: number, token: string | null): ChangeFeed
  /**
   * Deletes change-log entries written before `olderThan` (all projects) and moves the horizon past
   * them: a later `readChanges` with a token older than the horizon answers `reset: true`. Returns
   * the number of entries deleted.
   */
  pruneChanges(olderThan: Date): Promise<number>
}
