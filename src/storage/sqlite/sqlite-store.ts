import { open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { performance } from 'node:perf_hooks'
import Database from 'better-sqlite3'
import type { Statement } from 'better-sqlite3'
import { TraitbaseError } from '../../core/errors.js'
import { USER_ID_FIELD } from '../../core/limits.js'
import type { Scope } from '../../core/scopes.js'
import type { Condition } from '../../core/segment.js'
import type { UploadBatch } from '../../core/upload.js'
import { newAdminTokenId, newKeyId, newSegmentId } from '../api-keys.js'
import { prefixUpperBound } from '../prefix.js'
import {
  attributeIndexName,
  checkAttributeName,
  checkIndexKind,
  createAttributeIndexSql,
  projectFilter,
  type AttributeIndex,
  type AttributeIndexKind,
} from '../attribute-index.js'
import { compileCondition, registerSqliteFunctions, sqliteDialect, type CompiledSql } from '../sql-dialect.js'
import { idempotencyState } from '../idempotency.js'
import type {
  AdminSession,
  AdminToken,
  KeyEvent,
  ListUsersOptions,
  NewKeyEvent,
  ProjectSummary,
  RequestLogEntry,
  RequestLogQuery,
  RequestLogRecord,
  UserSummary,
  ChangeFeed,
  ChangePage,
  IdempotencyClaim,
  IdempotencyState,
  KeyRecord,
  NewKey,
  Profile,
  ProfileState,
  Project,
  SavedSegment,
  ScanOptions,
  Store,
  StoreOptions,
  UploadOutcome,
} from '../store.js'
import { startPruneTimer } from '../pruning.js'
import { checkTimeZone } from '../time-zone.js'
import { DEFAULT_CHANGE_RETENTION_MS } from '../store.js'
import { Checkpointer } from './sqlite-checkpointer.js'
import { SqliteReader, type SqliteReaderOptions } from './sqlite-reader.js'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js'

/** Tuning of the SQLite connection; the defaults are what the benchmarks measured best. */
export interface SqliteStoreOptions extends StoreOptions {
  /** Page cache in MiB. Default 256: the default 2 MB cache thrashes once the table outgrows it. */
  readonly cacheMiB?: number
  /** Page size of a new database file in bytes. Default SQLite's (4096). */
  readonly pageSize?: number
  /** Memory-mapped I/O window in MiB. Default 1024. */
  readonly mmapMiB?: number
  /**
   * `worker` (default for files): a worker thread checkpoints the WAL, so commits never stall on it.
   * `inline`: SQLite's own auto-checkpoint inside commits, every `walAutocheckpoint` pages.
   */
  readonly checkpoint?: 'worker' | 'inline'
  /** WAL pages per inline auto-checkpoint. Default 10,000 (about 40 MB of WAL). */
  readonly walAutocheckpoint?: number
  /**
   * `worker` (default for files): filtered scans and counts (segments without the in-memory index,
   * exports) run on a reader thread with its own connection, so they never hold the event loop.
   * `inline`: on the store's own connection (`:memory:` databases always read inline).
   */
  readonly reads?: 'worker' | 'inline'
  /**
   * Open an existing, migrated file read-only, for reading only (the segment index's build thread
   * reads the change feed this way): no checkpointer, reader thread or pruning, no pragma that writes.
   */
  readonly readOnly?: boolean
  /**
   * A group commit stops taking queued uploads once it has written for this long; the rest wait for
   * the next turn of the event loop, so one commit holds the loop for about this long plus one
   * request. Default 20 ms: one 100-user request of random users measured 11–14 ms (p50) and 20–35 ms
   * (p90) at a million users on the 2-core machine under load, ~1 ms in a small project, and an
   * fsync costs ~0.2 ms, so little is lost by committing more often. 0: one request per commit.
   */
  readonly commitBudgetMs?: number
  /** Users one group commit writes at most (a single larger request still commits whole). Default 2,000. */
  readonly commitMaxUsers?: number
}

/** Entries (or profiles) per page of the change feed: bounded memory, event loop freed between pages. */
const CHANGE_PAGE = 1000
const DEFAULT_COMMIT_BUDGET_MS = 20
const DEFAULT_COMMIT_MAX_USERS = 2000
const TOKEN_PREFIX = 's1:'
/** Change-log entries deleted per pruning transaction. */
const PRUNE_CHUNK = 10_000

interface ProfileRow {
  user_id: string
  attributes: string
  created_at: number
  updated_at: number
}

type StateRow = Pick<ProfileRow, 'user_id' | 'attributes'>

interface KeyRow {
  id: string
  project_id: number
  project_name: string
  label: string
  scopes: string
  hash: string
  created_at: number
  last_used_at: number | null
  revoked_at: number | null
  expires_at: number | null
  project_rate_limit: number | null
}

interface SegmentRow {
  id: string
  name: string
  where_json: string
  created_at: number
  updated_at: number
}

interface PendingUpload {
  readonly projectId: number
  readonly batch: UploadBatch
  readonly resolve: (outcome: UploadOutcome) => void
  readonly reject: (error: unknown) => void
}

/** The columns compiled conditions refer to. */
const PROFILE_COLUMNS = { userId: 'user_id', attrs: 'attributes' }
/** Profiles are stored as SQLite JSONB (binary): merging skips re-parsing the stored document. */
const PROFILE_SELECT = 'user_id, json(attributes) AS attributes, created_at, updated_at'
/** The unique index SQLite made for `profiles`' primary key (a rowid table since 0004_profiles_rowid). */
const PROFILES_KEY_INDEX = 'sqlite_autoindex_profiles_1'
const COUNT_ALL = 'SELECT count(*) FROM profiles WHERE project_id = ?'
/** What the change feed reads: no timestamps. */
const STATE_SELECT = 'user_id, json(attributes) AS attributes'
/**
 * One page of changes (on the feed thread, or inline), in ONE statement (so one snapshot): the users of
 * the next `CHANGE_PAGE` log entries after a position, each once with its last entry's seq and its
 * current state (NULL attributes: deleted), and the prune horizon seen in the same snapshot.
 * Parameters: project, project, position, end, limit, project.
 */
const FEED_CHANGES_SQL = `SELECT e.user_id, e.seq, json(p.attributes) AS attributes,
  (SELECT pruned_seq FROM projects WHERE id = ?) AS pruned_seq
FROM (SELECT user_id, max(seq) AS seq FROM
       (SELECT seq, user_id FROM change_log WHERE project_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?)
     GROUP BY user_id) AS e
LEFT JOIN profiles AS p ON p.project_id = ? AND p.user_id = e.user_id`
const PRUNED_SEQ_SQL = 'SELECT pruned_seq FROM projects WHERE id = ?'
const FEED_FIRST_SQL = `SELECT ${STATE_SELECT} FROM profiles WHERE project_id = ? ORDER BY user_id LIMIT ?`
const FEED_AFTER_SQL = `SELECT ${STATE_SELECT} FROM profiles WHERE project_id = ? AND user_id > ? ORDER BY user_id LIMIT ?`

/** A page of the change log read up to `position` (the last entry's seq). */
interface ChangesPage {
  readonly upserts: ProfileState[]
  readonly deletedUserIds: string[]
  readonly position: number
}

/**
 * The SQLite store (better-sqlite3, synchronous). Writes use group commit: `applyUpload` queues the
 * batch and one flush per event-loop turn writes queued batches in ONE `BEGIN IMMEDIATE`
 * transaction, each batch inside its own SAVEPOINT so a failing batch rolls back alone and rejects
 * only its own promise. One fsync then covers many requests. A flush takes batches in order until it
 * has written for `commitBudgetMs` or `commitMaxUsers` users (at least one batch) and leaves the rest
 * for the next turn, so a burst never holds the event loop for the whole queue. Reads run on the same
 * connection and therefore see every write whose promise resolved.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const
  /** The connection; exposed for tests and benchmarks, not for server code. */
  readonly database: Database.Database
  private readonly changeLog: boolean
  private statements: ReturnType<typeof prepareStatements> | undefined
  private queue: PendingUpload[] = []
  private touches = new Map<string, { at: number; waiters: (() => void)[] }>()
  private flushScheduled = false
  private closed = false
  private readonly checkpointer: Checkpointer | undefined
  private readonly reader: SqliteReader | undefined
  /**
   * Reads the change feed's pages (catch-up after an index build, the background follow, every
   * query's sync) on a thread of its own, started at the first read, so a page of a thousand
   * random profile lookups never holds the event loop, and never waits behind a long scan of
   * {@link reader}. Undefined where reads are inline.
   */
  private feedThread: SqliteReader | undefined
  private readonly feedThreadOptions: SqliteReaderOptions | undefined
  private pruneTimer: NodeJS.Timeout | undefined
  private readonly commitBudgetMs: number
  private readonly commitMaxUsers: number
  /**
   * The WAL file of a file database. Group commits are written without SQLite's fsync (that waited
   * for the disk on the event loop: 0.1-0.5 s while a build thread or checkpoint kept it busy) and
   * acknowledged after an fsync of this file on libuv's thread pool ({@link syncWal}).
   */
  private readonly walPath: string | undefined
  private walSyncRunning: Promise<void> | undefined
  private walSyncQueued: Promise<void> | undefined
  /** The folder's entry of the WAL file is synced once (as SQLite does when it creates the file). */
  private walEntrySynced = false

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.changeLog = options.changeLog !== false
    this.commitBudgetMs = options.commitBudgetMs ?? DEFAULT_COMMIT_BUDGET_MS
    this.commitMaxUsers = options.commitMaxUsers ?? DEFAULT_COMMIT_MAX_USERS
    const readOnly = options.readOnly === true
    this.walPath = filename === ':memory:' || readOnly ? undefined : `${filename}-wal`
    this.database = new Database(filename, readOnly ? { readonly: true, fileMustExist: true } : {})
    const db = this.database
    // Only a new, empty database takes a page size; an existing one keeps its own.
    if (options.pageSize !== undefined && !readOnly) db.pragma(`page_size = ${options.pageSize}`)
    if (!readOnly) db.pragma('journal_mode = WAL')
    // FULL measured as fast as NORMAL here, and a 200 must survive power loss, not only a crash.
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    db.pragma(`cache_size = ${-1024 * (options.cacheMiB ?? 256)}`)
    db.pragma(`mmap_size = ${1024 * 1024 * (options.mmapMiB ?? 1024)}`)
    const useWorker = filename !== ':memory:' && !readOnly && (options.checkpoint ?? 'worker') === 'worker'
    db.pragma(`wal_autocheckpoint = ${useWorker ? 0 : (options.walAutocheckpoint ?? 10_000)}`)
    if (useWorker) {
      // No journal_size_limit: with one, the writer truncates a WAL file grown past it when it
      // restarts the WAL, inside a commit on the event loop (a 208 ms commit in the cold-start
      // profile; ftruncate of 600 MiB takes 127 ms here). The file keeps its largest size instead
      // (it grows past ~64 MiB only while a long read, e.g. an index build, holds old frames) and is
      // removed when the store closes. Truncating it from the checkpointer's thread would hold the
      // write lock meanwhile, and every other write on this connection would wait on the loop.
      this.checkpointer = new Checkpointer({
        filename,
        // Without the worker, SQLite's own auto-checkpoint keeps the WAL bounded again.
        onFailure: () => {
          if (!this.closed) db.pragma(`wal_autocheckpoint = ${options.walAutocheckpoint ?? 10_000}`)
        },
      })
    }
    db.pragma('temp_store = MEMORY')
    registerSqliteFunctions(db)
    if (filename !== ':memory:' && !readOnly && (options.reads ?? 'worker') === 'worker') {
      // Its own page cache: a quarter of the writer's, enough for the scans it runs.
      this.reader = new SqliteReader({
        filename,
        cacheMiB: Math.max(16, Math.floor((options.cacheMiB ?? 256) / 4)),
        mmapMiB: options.mmapMiB ?? 1024,
      })
      this.feedThreadOptions = { filename, cacheMiB: 16, mmapMiB: options.mmapMiB ?? 1024 }
    }
    if (this.changeLog && !readOnly && options.changeRetentionMs !== 0) {
      this.pruneTimer = startPruneTimer(
        (olderThan) => this.pruneChanges(olderThan),
        () => this.closed,
        options.changeRetentionMs ?? DEFAULT_CHANGE_RETENTION_MS,
        options.pruneIntervalMs ?? 60_000,
      )
    }
  }

  private idempotencyStatements: ReturnType<typeof prepareIdempotencyStatements> | undefined

  private get idem(): ReturnType<typeof prepareIdempotencyStatements> {
    if (this.idempotencyStatements === undefined)
      this.idempotencyStatements = prepareIdempotencyStatements(this.database)
    return this.idempotencyStatements
  }

  private get s(): ReturnType<typeof prepareStatements> {
    if (this.statements === undefined) this.statements = prepareStatements(this.database)
    return this.statements
  }

  async migrate(): Promise<void> {
    const db = this.database
    db.exec('CREATE TABLE IF NOT EXISTS traitbase_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)')
    // IMMEDIATE takes the write lock first, so two processes migrating at once run one after the other.
    db.transaction(() => {
      const done = new Set(
        db
          .prepare('SELECT id FROM traitbase_migrations')
          .pluck()
          .all()
          .map((id) => id as string),
      )
      for (const m of SQLITE_MIGRATIONS) {
        if (done.has(m.id)) continue
        db.exec(m.sql)
        db.prepare('INSERT INTO traitbase_migrations (id, applied_at) VALUES (?, ?)').run(m.id, Date.now())
      }
      // 0004_profiles_rowid rebuilt `profiles`, and its attribute indexes went with the old table.
      if (!done.has('0004_profiles_rowid')) {
        const indexes = db.prepare('SELECT project_id, name, kind, index_name FROM attribute_indexes').all() as {
          project_id: number
          name: string
          kind: AttributeIndexKind
          index_name: string
        }[]
        for (const i of indexes) {
          db.exec(createAttributeIndexSql(sqliteDialect, i.project_id, i.name, i.kind))
          db.exec(`ANALYZE ${i.index_name}`)
        }
        if (indexes.length > 0) db.exec(`ANALYZE ${PROFILES_KEY_INDEX}`)
      }
    }).immediate()
  }

  async close(): Promise<void> {
    if (this.closed) return
    while (this.queue.length > 0 || this.touches.size > 0) this.flush()
    this.closed = true
    // Acknowledge what was committed before the connection (maybe the last, which removes the WAL) closes.
    await (this.walSyncQueued ?? this.walSyncRunning)?.catch(() => undefined)
    clearInterval(this.pruneTimer)
    await this.reader?.stop()
    await this.feedThread?.stop()
    await this.checkpointer?.stop()
    this.database.close()
  }

  async ping(): Promise<void> {
    this.database.prepare('SELECT 1').get()
  }

  async ensureProject(name: string): Promise<Project> {
    checkProjectName(name)
    const now = Date.now()
    this.s.insertProject.run(name, now)
    const row = this.s.projectByName.get(name) as { id: number; name: string; created_at: number }
    return { id: row.id, name: row.name, createdAt: iso(row.created_at) }
  }

  async findProject(name: string): Promise<Project | undefined> {
    const row = this.s.projectByName.get(name) as { id: number; name: string; created_at: number } | undefined
    return row && { id: row.id, name: row.name, createdAt: iso(row.created_at) }
  }

  async setProjectRateLimit(
    name: string,
    perMinute: number | null,
  ): Promise<{ project: Project; rateLimit: number | null } | undefined> {
    const row = this.idem.setRateLimit.get(perMinute, name) as
      { id: number; name: string; created_at: number; rate_limit: number | null } | undefined
    return row && { project: { id: row.id, name: row.name, createdAt: iso(row.created_at) }, rateLimit: row.rate_limit }
  }

  /**
   * Idempotency records are written without an fsync of their own (synchronous=NORMAL for that one
   * statement; the next upload's commit syncs them with it): losing one in a power cut only lets a
   * retry run again, which leaves the same state, while an fsync each would halve upload throughput
   * next to the group commit. Synchronous calls: nothing else runs on the connection in between.
   */
  private unsynced<T>(write: () => T): T {
    this.database.pragma('synchronous = NORMAL')
    try {
      return write()
    } finally {
      this.database.pragma('synchronous = FULL')
    }
  }

  /** One synchronous statement pair: nothing else runs between them in this process, the only one on SQLite. */
  async claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyState> {
    const i = this.idem
    const taken = this.unsynced(() =>
      i.claim.run({
        projectId: claim.projectId,
        key: claim.key,
        fingerprint: claim.fingerprint,
        now: claim.now.getTime(),
        expiredBefore: claim.expiredBefore.getTime(),
        abandonedBefore: claim.abandonedBefore.getTime(),
      }),
    )
    if (taken.changes === 1) return { kind: 'claimed' }
    const row = i.held.get(claim.projectId, claim.key) as
      { fingerprint: string; status: number | null; response: string | null } | undefined
    if (row === undefined) throw new Error('idempotency key neither claimed nor held')
    return idempotencyState(row, claim.fingerprint)
  }

  async completeIdempotencyKey(projectId: number, key: string, status: number, body: string): Promise<void> {
    this.unsynced(() => this.idem.complete.run(status, body, projectId, key))
  }

  async releaseIdempotencyKey(projectId: number, key: string): Promise<void> {
    this.unsynced(() => this.idem.release.run(projectId, key))
  }

  async pruneIdempotencyKeys(olderThan: Date): Promise<number> {
    return this.idem.prune.run(olderThan.getTime()).changes
  }

  async getProjectTimeZone(projectId: number): Promise<string | undefined> {
    return this.s.timeZoneOf.get(projectId) as string | undefined
  }

  async setProjectTimeZone(projectId: number, timeZone: string): Promise<string | undefined> {
    const zone = checkTimeZone(timeZone)
    return this.s.setTimeZone.run(zone, projectId).changes === 1 ? zone : undefined
  }

  async createKey(input: NewKey): Promise<KeyRecord> {
    const id = newKeyId()
    const now = Date.now()
    if (this.s.projectById.get(input.projectId) === undefined) {
      throw new TraitbaseError('NOT_FOUND', `No project with id ${input.projectId}`)
    }
    this.s.insertKey.run(input.projectId, id, input.hash, input.label, input.scopes.join(','), now)
    return toKey(this.s.keyById.get(id) as KeyRow)
  }

  async listKeys(projectId: number): Promise<KeyRecord[]> {
    return (this.s.keysOfProject.all(projectId) as KeyRow[]).map(toKey)
  }

  async revokeKey(keyId: string): Promise<boolean> {
    return this.s.revokeKey.run(Date.now(), keyId).changes === 1
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    const row = this.s.keyByHash.get(hash) as KeyRow | undefined
    return row && toKey(row)
  }

  /** Coalesced into the next group commit: a key used by 1,000 requests a second costs one row write. */
  touchKey(keyId: string, at: Date): Promise<void> {
    if (this.closed) return Promise.reject(new Error('The store is closed'))
    return new Promise((resolve) => {
      const entry = this.touches.get(keyId)
      if (entry === undefined) this.touches.set(keyId, { at: at.getTime(), waiters: [resolve] })
      else {
        entry.at = Math.max(entry.at, at.getTime())
        entry.waiters.push(resolve)
      }
      this.scheduleFlush()
    })
  }

  applyUpload(projectId: number, batch: UploadBatch): Promise<UploadOutcome> {
    if (this.closed) return Promise.reject(new Error('The store is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ projectId, batch, resolve, reject })
      this.scheduleFlush()
    })
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    if (this.checkpointer?.shouldCatchUp) {
      // Let the WAL restart: no commit until a checkpoint has copied all of it (see Checkpointer).
      void this.checkpointer.catchUp().then(() => this.flush())
    } else {
      setImmediate(() => this.flush())
    }
  }

  /**
   * Writes queued batches (in order, within the commit budget) and every key touch in one
   * transaction, then settles their promises; what is left is flushed on the next turn.
   */
  private flush(): void {
    this.flushScheduled = false
    const touches = this.touches
    this.touches = new Map()
    if (this.queue.length === 0 && touches.size === 0) return
    const started = performance.now()
    const now = Date.now()
    const queue = this.queue
    const jobs: PendingUpload[] = []
    const outcomes: (UploadOutcome | { error: unknown })[] = []
    const committed =
      this.walPath === undefined
        ? this.commit(queue, jobs, outcomes, touches, started, now)
        : this.unsynced(() => this.commit(queue, jobs, outcomes, touches, started, now))
    if (!committed) return
    const settle = (): void => {
      jobs.forEach((job, i) => {
        const outcome = outcomes[i] as UploadOutcome | { error: unknown }
        if ('error' in outcome) job.reject(outcome.error)
        else job.resolve(outcome)
      })
      for (const touch of touches.values()) for (const done of touch.waiters) done()
    }
    if (this.walPath === undefined) settle()
    // Acknowledged once durable: a reply never promises a write a power cut could take back.
    else this.syncWal().then(settle, (error: unknown) => settleAll(jobs, touches, error))
  }

  /**
   * The transaction of {@link flush}: takes queued uploads into `jobs` within the budget and writes
   * them and the key touches; false (every job and touch settled with the error) if it failed.
   */
  private commit(
    queue: PendingUpload[],
    jobs: PendingUpload[],
    outcomes: (UploadOutcome | { error: unknown })[],
    touches: Map<string, { at: number; waiters: (() => void)[] }>,
    started: number,
    now: number,
  ): boolean {
    const s = this.s
    try {
      s.begin.run()
    } catch (error) {
      this.queue = []
      settleAll(queue, touches, error)
      return false
    }
    try {
      let users = 0
      for (const job of queue) {
        const rows = job.batch.patches.length
        if (
          jobs.length > 0 &&
          (users + rows > this.commitMaxUsers || performance.now() - started >= this.commitBudgetMs)
        ) {
          break
        }
        jobs.push(job)
        users += rows
        s.savepoint.run()
        try {
          outcomes.push(this.writeBatch(job.projectId, job.batch, now))
          s.release.run()
        } catch (error) {
          // Some errors (disk full, I/O) abort the whole transaction; then nothing can be kept.
          if (!this.database.inTransaction) throw error
          s.rollbackTo.run()
          s.release.run()
          outcomes.push({ error })
        }
      }
      for (const [keyId, touch] of touches) s.touchKey.run(touch.at, keyId)
      s.commit.run()
    } catch (error) {
      if (this.database.inTransaction) s.rollback.run()
      this.dequeue(jobs.length)
      settleAll(jobs, touches, error)
      return false
    }
    this.dequeue(jobs.length)
    return true
  }

  /**
   * Resolves once an fsync of the WAL file that began after this call has completed, so it covers
   * every commit made before the call. One fsync at a time; calls arriving meanwhile share the next.
   * A WAL that is gone was checkpointed into the database file, which SQLite synced first.
   */
  private syncWal(): Promise<void> {
    if (this.walSyncQueued !== undefined) return this.walSyncQueued
    const start = (): Promise<void> => {
      const wal = this.walPath as string
      const sync = this.walEntrySynced
        ? fsyncFile(wal)
        : fsyncFile(wal)
            .then(() => fsyncFile(dirname(wal)))
            .then(() => void (this.walEntrySynced = true))
      const run = sync.finally(() => {
        if (this.walSyncRunning === run) this.walSyncRunning = undefined
      })
      this.walSyncRunning = run
      return run
    }
    if (this.walSyncRunning === undefined) return start()
    const queued = this.walSyncRunning
      .catch(() => undefined)
      .then(() => {
        this.walSyncQueued = undefined
        return start()
      })
    this.walSyncQueued = queued
    return queued
  }

  /** Drops the first `n` queued uploads (just committed or failed) and schedules a flush for the rest. */
  private dequeue(n: number): void {
    this.queue.splice(0, n)
    if (this.queue.length > 0 && !this.closed) this.scheduleFlush()
  }

  private writeBatch(projectId: number, batch: UploadBatch, now: number): UploadOutcome {
    const s = this.s
    let created = 0
    let updated = 0
    let valuesWritten = 0
    const patches = batch.patches
    let seq = 0
    if (this.changeLog && patches.length > 0) {
      const end = s.advanceSeq.get(patches.length, projectId) as number | undefined
      if (end === undefined) throw new TraitbaseError('NOT_FOUND', `No project with id ${projectId}`)
      seq = end - patches.length
    }
    for (const patch of patches) {
      const json = JSON.stringify(patch.attributes)
      if (s.updateProfile.run(json, now, projectId, patch.userId).changes === 0) {
        s.insertProfile.run(projectId, patch.userId, json, now, now)
        created++
      } else {
        updated++
      }
      for (const name in patch.attributes) if (patch.attributes[name] !== null) valuesWritten++
      if (this.changeLog) s.insertChange.run(projectId, ++seq, patch.userId, now)
    }
    if (created > 0) s.addUsers.run(created, projectId)
    return { created, updated, valuesWritten }
  }

  async getProfile(projectId: number, userId: string): Promise<Profile | undefined> {
    const row = this.s.profile.get(projectId, userId) as ProfileRow | undefined
    return row && toProfile(row)
  }

  async deleteProfile(projectId: number, userId: string): Promise<boolean> {
    const s = this.s
    return this.database
      .transaction(() => {
        if (s.deleteProfile.run(projectId, userId).changes === 0) return false
        s.addUsers.run(-1, projectId)
        if (this.changeLog) {
          const seq = s.advanceSeq.get(1, projectId) as number
          s.insertChange.run(projectId, seq, userId, Date.now())
        }
        return true
      })
      .immediate()
  }

  async scanProfiles(projectId: number, options: ScanOptions): Promise<Profile[]> {
    const { sql, params } = sqliteScanSql(projectId, options)
    return ((await this.read(sql, params, 'all')) as ProfileRow[]).map(toProfile)
  }

  async countProfiles(projectId: number, where?: Condition): Promise<number> {
    if (where === undefined) return (await this.read(COUNT_ALL, [projectId], 'value')) as number
    const text = new Map<string, string>()
    const number = new Map<string, string>()
    for (const r of this.s.attributeIndexes.all(projectId) as { name: string; kind: string; index_name: string }[])
      (r.kind === 'text' ? text : number).set(r.name, r.index_name)
    const size = this.s.projectShare.get(projectId) as { users: number; total: number } | undefined
    const fullScan = size !== undefined && size.users >= FULL_SCAN_SHARE * size.total
    const planned = sqliteCountSql(projectId, where, { text, number, fullScan })
    try {
      return (await this.read(planned.sql, planned.params, 'value')) as number
    } catch (error) {
      // An index named by INDEXED BY was dropped (by another process) since the registry was read.
      if (!/no such index/.test((error as Error).message)) throw error
      const { sql, params } = sqliteCountSql(projectId, where, { text: new Map(), number: new Map(), fullScan })
      return (await this.read(sql, params, 'value')) as number
    }
  }

  async listAttributeIndexes(projectId: number): Promise<AttributeIndex[]> {
    const rows = this.database
      .prepare(
        'SELECT name, kind, index_name, created_at FROM attribute_indexes WHERE project_id = ? ORDER BY name, kind',
      )
      .all(projectId) as { name: string; kind: AttributeIndexKind; index_name: string; created_at: number }[]
    return rows.map((r) => ({ name: r.name, kind: r.kind, indexName: r.index_name, createdAt: iso(r.created_at) }))
  }

  /**
   * One IMMEDIATE transaction: the build and the registry row commit together. SQLite writes no
   * other transaction meanwhile (other writers wait up to busy_timeout), so it is an admin step.
   */
  async createAttributeIndex(
    projectId: number,
    name: string,
    kind: AttributeIndexKind,
  ): Promise<{ index: AttributeIndex; created: boolean }> {
    checkAttributeName(name)
    checkIndexKind(kind)
    if (this.s.projectById.get(projectId) === undefined) {
      throw new TraitbaseError('NOT_FOUND', `No project with id ${projectId}`)
    }
    const indexName = attributeIndexName(projectId, name, kind)
    const created = this.database
      .transaction(() => {
        this.database.exec(createAttributeIndexSql(sqliteDialect, projectId, name, kind))
        // Statistics of this index alone (with STAT4 samples of its values), so for an `all` of two
        // indexed conditions the planner walks the more selective index; and of the key (how many
        // rows a project has), without which the planner takes every project for ~10 rows and walks
        // the key instead of the attribute index.
        this.database.exec(`ANALYZE ${indexName}`)
        this.database.exec(`ANALYZE ${PROFILES_KEY_INDEX}`)
        return (
          this.database
            .prepare(
              'INSERT INTO attribute_indexes (project_id, name, kind, index_name, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
            )
            .run(projectId, name, kind, indexName, Date.now()).changes === 1
        )
      })
      .immediate()
    const index = (await this.listAttributeIndexes(projectId)).find((i) => i.name === name && i.kind === kind)
    return { index: index as AttributeIndex, created }
  }

  async dropAttributeIndex(projectId: number, name: string, kind: AttributeIndexKind): Promise<boolean> {
    checkAttributeName(name)
    checkIndexKind(kind)
    return this.database
      .transaction(() => {
        this.database.exec(`DROP INDEX IF EXISTS ${attributeIndexName(projectId, name, kind)}`)
        return (
          this.database
            .prepare('DELETE FROM attribute_indexes WHERE project_id = ? AND name = ? AND kind = ?')
            .run(projectId, name, kind).changes === 1
        )
      })
      .immediate()
  }

  /** A read that may scan many rows: on the reader thread when there is one, else here. */
  private async read(sql: string, params: unknown[], mode: 'all' | 'value'): Promise<unknown> {
    const off = await onThread(this.reader, sql, params, mode)
    if (off !== undefined) return off.result
    const statement = this.database.prepare(sql)
    return mode === 'value' ? statement.pluck().get(...params) : statement.all(...params)
  }

  /** The feed's thread, started at its first use; undefined where reads are inline or the store closed. */
  private feedReader(): SqliteReader | undefined {
    if (this.feedThread === undefined && this.feedThreadOptions !== undefined && !this.closed) {
      this.feedThread = new SqliteReader(this.feedThreadOptions)
    }
    return this.feedThread
  }

  /**
   * Up to {@link CHANGE_PAGE} log entries after `position` (≤ `end`): one statement, so one snapshot,
   * on the feed thread when it is up, else on this connection.
   */
  private async changesPage(projectId: number, position: number, end: number): Promise<ChangesPage> {
    const params = [projectId, projectId, position, end, CHANGE_PAGE, projectId]
    const off = await onThread(this.feedReader(), FEED_CHANGES_SQL, params, 'all')
    const rows = (off !== undefined ? off.result : this.s.feedChanges.all(...params)) as {
      user_id: string
      seq: number
      attributes: string | null
      pruned_seq: number
    }[]
    // No row: no entries left after `position`, or pruned since the read began.
    const pruned = rows[0]?.pruned_seq ?? (await this.prunedSeq(projectId))
    if (pruned > position) throw new Error('The change log was pruned during the read; read again with the same token')
    const upserts: ProfileState[] = []
    const deletedUserIds: string[] = []
    let last = rows.length === 0 ? end : position
    for (const row of rows) {
      if (row.attributes === null) deletedUserIds.push(row.user_id)
      else upserts.push(toState(row as StateRow))
      if (row.seq > last) last = row.seq
    }
    return { upserts, deletedUserIds, position: last }
  }

  private async prunedSeq(projectId: number): Promise<number> {
    const off = await onThread(this.feedReader(), PRUNED_SEQ_SQL, [projectId], 'value')
    if (off !== undefined) return off.result as number
    return (this.s.changeState.get(projectId) as { pruned_seq: number }).pruned_seq
  }

  /** Up to {@link CHANGE_PAGE} current profiles in user_id order after `after`, on the feed thread when it is up. */
  private async profilesPage(projectId: number, after: string | undefined): Promise<StateRow[]> {
    const params = after === undefined ? [projectId, CHANGE_PAGE] : [projectId, after, CHANGE_PAGE]
    const off = await onThread(this.feedReader(), after === undefined ? FEED_FIRST_SQL : FEED_AFTER_SQL, params, 'all')
    if (off !== undefined) return off.result as StateRow[]
    const s = this.s
    return (
      after === undefined ? s.feedFirst.all(projectId, CHANGE_PAGE) : s.feedAfter.all(projectId, after, CHANGE_PAGE)
    ) as StateRow[]
  }

  async createSegment(projectId: number, name: string, where: unknown): Promise<SavedSegment> {
    const id = newSegmentId()
    const now = Date.now()
    this.s.insertSegment.run(projectId, id, name, JSON.stringify(where), now, now)
    return toSegment(this.s.segment.get(projectId, id) as SegmentRow)
  }

  async listSegments(projectId: number): Promise<SavedSegment[]> {
    return (this.s.segmentsOfProject.all(projectId) as SegmentRow[]).map(toSegment)
  }

  async getSegment(projectId: number, id: string): Promise<SavedSegment | undefined> {
    const row = this.s.segment.get(projectId, id) as SegmentRow | undefined
    return row && toSegment(row)
  }

  async updateSegment(projectId: number, id: string, name: string, where: unknown): Promise<SavedSegment | undefined> {
    const r = this.s.updateSegment.run(name, JSON.stringify(where), Date.now(), projectId, id)
    if (r.changes === 0) return undefined
    return toSegment(this.s.segment.get(projectId, id) as SegmentRow)
  }

  async deleteSegment(projectId: number, id: string): Promise<boolean> {
    return this.s.deleteSegment.run(projectId, id).changes === 1
  }

  // ---- Administration ----

  async listProjects(): Promise<ProjectSummary[]> {
    const rows = this.database
      .prepare('SELECT p.id, p.name, p.created_at, p.last_upload_at, p.users FROM projects p ORDER BY p.name')
      .all() as { id: number; name: string; created_at: number; last_upload_at: number | null; users: number }[]
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: iso(r.created_at),
      users: r.users,
      lastUploadAt: r.last_upload_at === null ? null : iso(r.last_upload_at),
    }))
  }

  async getProject(id: number): Promise<Project | undefined> {
    const row = this.database.prepare('SELECT id, name, created_at FROM projects WHERE id = ?').get(id) as
      { id: number; name: string; created_at: number } | undefined
    return row && { id: row.id, name: row.name, createdAt: iso(row.created_at) }
  }

  async createProject(name: string): Promise<Project> {
    checkProjectName(name)
    const r = this.s.insertProject.run(name, Date.now())
    if (r.changes === 0) throw new TraitbaseError('CONFLICT', `A project named "${name}" exists already`)
    return (await this.findProject(name)) as Project
  }

  async renameProject(id: number, name: string): Promise<Project | undefined> {
    checkProjectName(name)
    const other = await this.findProject(name)
    if (other !== undefined && other.id !== id) {
      throw new TraitbaseError('CONFLICT', `A project named "${name}" exists already`)
    }
    this.database.prepare('UPDATE projects SET name = ? WHERE id = ?').run(name, id)
    return this.getProject(id)
  }

  async getKey(keyId: string): Promise<KeyRecord | undefined> {
    const row = this.s.keyById.get(keyId) as KeyRow | undefined
    return row && toKey(row)
  }

  async rotateKey(
    projectId: number,
    keyId: string,
    replacement: NewKey,
    expiresAt: Date,
  ): Promise<{ key: KeyRecord; previous: KeyRecord } | undefined> {
    const s = this.s
    return this.database
      .transaction(() => {
        const old = s.keyById.get(keyId) as KeyRow | undefined
        if (old === undefined || old.project_id !== projectId) return undefined
        const now = Date.now()
        if (old.revoked_at !== null) throw new TraitbaseError('CONFLICT', `Key ${keyId} is revoked; create a new key`)
        if (old.expires_at !== null && old.expires_at <= now) {
          throw new TraitbaseError('CONFLICT', `Key ${keyId} has expired; create a new key`)
        }
        const id = newKeyId()
        s.insertKey.run(projectId, id, replacement.hash, replacement.label, replacement.scopes.join(','), now)
        const at = Math.max(now, expiresAt.getTime())
        this.database
          .prepare('UPDATE api_keys SET expires_at = min(coalesce(expires_at, ?), ?) WHERE id = ?')
          .run(at, at, keyId)
        return { key: toKey(s.keyById.get(id) as KeyRow), previous: toKey(s.keyById.get(keyId) as KeyRow) }
      })
      .immediate()
  }

  async addKeyEvent(e: NewKeyEvent): Promise<void> {
    this.database
      .prepare('INSERT INTO key_events (project_id, key_id, event, at, actor, detail) VALUES (?, ?, ?, ?, ?, ?)')
      .run(e.projectId, e.keyId, e.event, Date.now(), e.actor, e.detail ?? '')
  }

  async listKeyEvents(projectId: number, limit: number): Promise<KeyEvent[]> {
    const rows = this.database
      .prepare(
        'SELECT id, project_id, key_id, event, at, actor, detail FROM key_events WHERE project_id = ? ORDER BY id DESC LIMIT ?',
      )
      .all(projectId, limit) as {
      id: number
      project_id: number
      key_id: string
      event: KeyEvent['event']
      at: number
      actor: string
      detail: string
    }[]
    return rows.map((r) => ({
      id: r.id,
      projectId: r.project_id,
      keyId: r.key_id,
      event: r.event,
      at: iso(r.at),
      actor: r.actor,
      detail: r.detail,
    }))
  }

  async getSetting(name: string): Promise<string | undefined> {
    return this.database.prepare('SELECT value FROM admin_settings WHERE name = ?').pluck().get(name) as
      string | undefined
  }

  async setSetting(name: string, value: string): Promise<void> {
    this.database
      .prepare(
        'INSERT INTO admin_settings (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      )
      .run(name, value, Date.now())
  }

  async createAdminToken(input: { label: string; hash: string }): Promise<AdminToken> {
    const id = newAdminTokenId()
    this.database
      .prepare('INSERT INTO admin_tokens (id, hash, label, created_at) VALUES (?, ?, ?, ?)')
      .run(id, input.hash, input.label, Date.now())
    return toAdminToken(this.database.prepare(`${TOKEN_SELECT} WHERE id = ?`).get(id) as AdminTokenRow)
  }

  async findAdminTokenByHash(hash: string): Promise<AdminToken | undefined> {
    const row = this.database.prepare(`${TOKEN_SELECT} WHERE hash = ?`).get(hash) as AdminTokenRow | undefined
    return row && toAdminToken(row)
  }

  async listAdminTokens(): Promise<AdminToken[]> {
    return (this.database.prepare(`${TOKEN_SELECT} ORDER BY created_at, id`).all() as AdminTokenRow[]).map(toAdminToken)
  }

  async revokeAdminToken(id: string): Promise<boolean> {
    return (
      this.database
        .prepare('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL')
        .run(Date.now(), id).changes === 1
    )
  }

  async touchAdminToken(id: string, at: Date): Promise<void> {
    this.database
      .prepare('UPDATE admin_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?')
      .run(at.getTime(), id)
  }

  async createSession(session: { idHash: string; csrfToken: string; expiresAt: Date }): Promise<void> {
    this.database
      .prepare('INSERT INTO admin_sessions (id_hash, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?)')
      .run(session.idHash, session.csrfToken, Date.now(), session.expiresAt.getTime())
  }

  async findSession(idHash: string): Promise<AdminSession | undefined> {
    const row = this.database
      .prepare('SELECT id_hash, csrf_token, created_at, expires_at FROM admin_sessions WHERE id_hash = ?')
      .get(idHash) as { id_hash: string; csrf_token: string; created_at: number; expires_at: number } | undefined
    return (
      row && {
        idHash: row.id_hash,
        csrfToken: row.csrf_token,
        createdAt: iso(row.created_at),
        expiresAt: iso(row.expires_at),
      }
    )
  }

  async extendSession(idHash: string, expiresAt: Date): Promise<void> {
    this.database
      .prepare('UPDATE admin_sessions SET expires_at = max(expires_at, ?) WHERE id_hash = ?')
      .run(expiresAt.getTime(), idHash)
  }

  async deleteSession(idHash: string): Promise<void> {
    this.database.prepare('DELETE FROM admin_sessions WHERE id_hash = ?').run(idHash)
  }

  async deleteAllSessions(): Promise<void> {
    this.database.prepare('DELETE FROM admin_sessions').run()
  }

  async recordLoginFailure(ip: string, at: Date): Promise<void> {
    this.database.prepare('INSERT INTO admin_login_failures (ip, at) VALUES (?, ?)').run(ip, at.getTime())
  }

  async countLoginFailures(ip: string | null, since: Date): Promise<{ count: number; oldest: string | null }> {
    const row = (
      ip === null
        ? this.database
            .prepare('SELECT count(*) AS n, min(at) AS oldest FROM admin_login_failures WHERE at >= ?')
            .get(since.getTime())
        : this.database
            .prepare('SELECT count(*) AS n, min(at) AS oldest FROM admin_login_failures WHERE ip = ? AND at >= ?')
            .get(ip, since.getTime())
    ) as { n: number; oldest: number | null }
    return { count: row.n, oldest: row.oldest === null ? null : iso(row.oldest) }
  }

  async clearLoginFailures(ip: string): Promise<void> {
    this.database.prepare('DELETE FROM admin_login_failures WHERE ip = ?').run(ip)
  }

  async appendRequestLog(entries: readonly RequestLogEntry[]): Promise<void> {
    if (entries.length === 0 || this.closed) return
    const insert = this.s.insertRequestLog
    const lastUpload = new Map<number, number>()
    // Without an fsync of its own (see unsynced): the log is diagnostics, the next upload's commit
    // syncs it, and an fsync here held the event loop for up to 0.57 s while a build thread kept
    // the disk busy (CPU profile of the cold-start bench).
    this.unsynced(() =>
      this.database.transaction(() => {
        for (const e of entries) {
          insert.run(
            e.projectId,
            e.time,
            e.method,
            e.path,
            e.keyId,
            e.keyLabel,
            e.requestId,
            e.status,
            e.durationMs,
            e.usersCreated,
            e.usersUpdated,
            e.error,
            e.dryRun ? 1 : 0,
          )
          if (e.upload) lastUpload.set(e.projectId, Math.max(lastUpload.get(e.projectId) ?? 0, e.time))
        }
        for (const [projectId, at] of lastUpload) {
          this.database
            .prepare('UPDATE projects SET last_upload_at = max(coalesce(last_upload_at, 0), ?) WHERE id = ?')
            .run(at, projectId)
        }
      })(),
    )
  }

  async listRequestLog(projectId: number, q: RequestLogQuery): Promise<RequestLogRecord[]> {
    const params: unknown[] = [projectId]
    let sql = `SELECT * FROM request_log WHERE project_id = ?`
    if (q.statusClass !== undefined) {
      sql += ' AND status >= ? AND status < ?'
      params.push(q.statusClass * 100, q.statusClass * 100 + 100)
    }
    if (q.keyId !== undefined) {
      sql += ' AND key_id = ?'
      params.push(q.keyId)
    }
    if (q.before !== undefined) {
      sql += ' AND id < ?'
      params.push(q.before)
    }
    if (q.after !== undefined) {
      sql += ' AND id > ?'
      params.push(q.after)
    }
    sql += ' ORDER BY id DESC LIMIT ?'
    params.push(q.limit)
    return (this.database.prepare(sql).all(...params) as RequestLogRow[]).map((r) => ({
      id: r.id,
      projectId: r.project_id,
      time: iso(r.time),
      method: r.method,
      path: r.path,
      keyId: r.key_id,
      keyLabel: r.key_label,
      requestId: r.request_id,
      status: r.status,
      durationMs: r.duration_ms,
      usersCreated: r.users_created,
      usersUpdated: r.users_updated,
      error: r.error,
      dryRun: r.dry_run === 1,
    }))
  }

  /** Deletes in chunks with the event loop freed between them: pruning never stalls uploads. */
  async pruneAdminData(options: { maxPerProject: number; olderThan: Date; now: Date }): Promise<number> {
    const db = this.database
    let deleted = 0
    const chunked = async (sql: string, ...params: unknown[]): Promise<void> => {
      for (;;) {
        if (this.closed) return
        const n = db.prepare(sql).run(...params, PRUNE_CHUNK).changes
        deleted += n
        if (n < PRUNE_CHUNK) return
        await yieldToEventLoop()
      }
    }
    await chunked(
      'DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE time < ? LIMIT ?)',
      options.olderThan.getTime(),
    )
    for (const projectId of this.s.projectIds.all() as number[]) {
      if (this.closed) return deleted
      const edge = db
        .prepare('SELECT id FROM request_log WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?')
        .pluck()
        .get(projectId, options.maxPerProject - 1) as number | undefined
      if (edge === undefined) continue
      await chunked(
        'DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE project_id = ? AND id < ? LIMIT ?)',
        projectId,
        edge,
      )
    }
    const now = options.now.getTime()
    db.prepare('DELETE FROM admin_sessions WHERE expires_at <= ?').run(now)
    db.prepare('DELETE FROM admin_login_failures WHERE at < ?').run(now - 24 * 3600_000)
    return deleted
  }

  async listUsers(projectId: number, options: ListUsersOptions): Promise<UserSummary[]> {
    const params: unknown[] = [projectId]
    let sql = 'SELECT user_id, created_at, updated_at FROM profiles WHERE project_id = ?'
    if (options.prefix !== undefined && options.prefix !== '') {
      sql += ' AND user_id >= ?'
      params.push(options.prefix)
      const upper = prefixUpperBound(options.prefix)
      if (upper !== undefined) {
        sql += ' AND user_id < ?'
        params.push(upper)
      } else {
        sql += ' AND substr(user_id, 1, ?) = ?'
        params.push([...options.prefix].length, options.prefix)
      }
    }
    if (options.afterUserId !== undefined) {
      sql += ' AND user_id > ?'
      params.push(options.afterUserId)
    }
    sql += ' ORDER BY user_id LIMIT ?'
    params.push(options.limit)
    const rows = this.database.prepare(sql).all(...params) as {
      user_id: string
      created_at: number
      updated_at: number
    }[]
    return rows.map((r) => ({ userId: r.user_id, createdAt: iso(r.created_at), updatedAt: iso(r.updated_at) }))
  }

  readChanges(projectId: number, token: string | null): ChangeFeed {
    const since = token === null ? null : parseToken(token)
    let next: string | undefined
    const pages = async function* (this: SqliteStore): AsyncGenerator<ChangePage> {
      const s = this.s
      const state = s.changeState.get(projectId) as { change_seq: number; pruned_seq: number } | undefined
      const end = state?.change_seq ?? 0
      // Without a change log (benchmark baseline) every read starts over: slow but never wrong.
      if (this.changeLog && since !== null && since >= (state?.pruned_seq ?? 0) && since <= end) {
        // The next page is read (on the feed thread) while the caller applies this one.
        let pending = since < end ? ahead(this.changesPage(projectId, since, end)) : undefined
        while (pending !== undefined) {
          const page = await pending
          pending = page.position < end ? ahead(this.changesPage(projectId, page.position, end)) : undefined
          yield { reset: false, upserts: page.upserts, deletedUserIds: page.deletedUserIds }
          await yieldToEventLoop()
        }
        next = TOKEN_PREFIX + end
        return
      }
      // No token, or one older than the prune horizon: start over from every current profile.
      // Writes made during the scan have seq > end and are read again next time, never missed.
      let pending: Promise<StateRow[]> | undefined = ahead(this.profilesPage(projectId, undefined))
      let first = true
      while (pending !== undefined) {
        const rows: StateRow[] = await pending
        const last = rows[rows.length - 1]
        pending =
          rows.length < CHANGE_PAGE || last === undefined
            ? undefined
            : ahead(this.profilesPage(projectId, last.user_id))
        if (first || rows.length > 0) yield { reset: first, upserts: rows.map(toState), deletedUserIds: [] }
        first = false
        await yieldToEventLoop()
      }
      next = TOKEN_PREFIX + end
    }.call(this)
    return {
      pages,
      token() {
        if (next === undefined) throw new Error('token() is valid only after every page was read')
        return next
      },
    }
  }

  /**
   * Deletes old entries from the oldest on, at most {@link PRUNE_CHUNK} per transaction with the
   * event loop freed between chunks, so pruning millions of entries never stalls uploads.
   */
  async pruneChanges(olderThan: Date): Promise<number> {
    const s = this.s
    const cutoff = olderThan.getTime()
    let deleted = 0
    for (const projectId of s.projectIds.all() as number[]) {
      for (;;) {
        if (this.closed) return deleted
        const chunk = this.database
          .transaction(() => {
            const oldest = s.oldestChanges.all(projectId, PRUNE_CHUNK) as { seq: number; changed_at: number }[]
            let horizon: number | undefined
            for (const entry of oldest) {
              if (entry.changed_at >= cutoff) break
              horizon = entry.seq
            }
            if (horizon === undefined) return { n: 0, more: false }
            const n = s.deleteChanges.run(projectId, horizon).changes
            s.setPruned.run(horizon, projectId)
            return { n, more: horizon === oldest[oldest.length - 1]?.seq && oldest.length === PRUNE_CHUNK }
          })
          .immediate()
        deleted += chunk.n
        if (!chunk.more) break
        await yieldToEventLoop()
      }
    }
    return deleted
  }
}

/**
 * The database path's page query. The project id is a literal, so a partial attribute index
 * (`WHERE project_id = <id>`) can serve it; values stay bound parameters. Exported for the plan tests.
 */
export function sqliteScanSql(projectId: number, options: ScanOptions): CompiledSql {
  const params: unknown[] = []
  let sql = `SELECT ${PROFILE_SELECT} FROM profiles WHERE ${projectFilter(projectId)}`
  if (options.afterUserId !== undefined) {
    sql += ' AND user_id > ?'
    params.push(options.afterUserId)
  }
  if (options.where !== undefined) {
    const compiled = compileCondition(options.where, sqliteDialect, 1, PROFILE_COLUMNS)
    sql += ` AND (${compiled.sql})`
    params.push(...compiled.params)
  }
  sql += ' ORDER BY user_id LIMIT ?'
  params.push(options.limit)
  return { sql, params }
}

/** Most aliases of `profiles` in one count (each walks or probes one attribute index). */
const MAX_PROBES = 4

/** A project holding at least this share of all profiles is counted by a scan of the whole table. */
const FULL_SCAN_SHARE = 0.3

/** What the count planner knows of a project (see {@link sqliteCountSql}). */
export interface CountPlanInput {
  /** Attribute name → index name, of the project's `text` attribute indexes. */
  readonly text: ReadonlyMap<string, string>
  /** The same for its `number` indexes. */
  readonly number: ReadonlyMap<string, string>
  /** The project holds a large share of the table: without an index, scan the table in rowid order. */
  readonly fullScan: boolean
}

const NO_INDEXES: CountPlanInput = { text: new Map(), number: new Map(), fullScan: false }

/** A positive `eq` or `in` leaf on an attribute with a text index: answerable by a probe of that index. */
function probeIndex(c: Condition, text: ReadonlyMap<string, string>): string | undefined {
  if (!((c.kind === 'text' && c.op === 'eq') || (c.kind === 'set' && c.op === 'in'))) return undefined
  return c.field === USER_ID_FIELD ? undefined : text.get(c.field)
}

/** The index a leaf can walk to find its matches (not `exists`: it matches nearly every row). */
function walkIndex(c: Condition, input: CountPlanInput): string | undefined {
  if (c.kind === 'all' || c.kind === 'any' || c.kind === 'not' || c.field === USER_ID_FIELD) return undefined
  if (c.kind === 'numeric') return input.number.get(c.field)
  if (c.kind === 'presence') return c.op === 'not_exists' ? input.text.get(c.field) : undefined
  return probeIndex(c, input.text)
}

/**
 * The database path's count query (see {@link sqliteScanSql}); the plan is chosen here, not left to
 * the planner, whose statistics (ANALYZE) would be stale or missing in a table that grows by
 * uploads. With `input` (the project's attribute indexes and size):
 * - an `all` with two or more positive `eq` / `in` leaves on text-indexed attributes counts as a
 *   join of `profiles` with itself, one alias per such leaf, each `INDEXED BY` its attribute's index,
 *   joined on user_id: the planner walks the smallest index and probes the others by (value,
 *   user_id), all inside the indexes (a single-table `AND` would read the table row of every match
 *   to test the rest). The other leaves stay on the first alias. Same rows: user_id is unique in a
 *   project, so every alias names the same profile;
 * - otherwise a leaf (or a leaf of a top-level `all`) that an index serves walks that index
 *   (`INDEXED BY`): `eq` before `in` before a range before `not_exists`;
 * - otherwise a project with a large share of the table is scanned in rowid order (`NOT INDEXED`),
 *   and a small one through its key (project_id, user_id).
 */
export function sqliteCountSql(projectId: number, where: Condition, input: CountPlanInput = NO_INDEXES): CompiledSql {
  const probes: { leaf: Condition; index: string }[] = []
  const leaves = where.kind === 'all' ? where.of : [where]
  const others: Condition[] = []
  const seen = new Set<string>()
  for (const c of leaves) {
    const index = probeIndex(c, input.text)
    if (index !== undefined && probes.length <= MAX_PROBES && !seen.has(index)) {
      seen.add(index)
      probes.push({ leaf: c, index })
    } else others.push(c)
  }
  if (probes.length < 2) {
    const compiled = compileCondition(where, sqliteDialect, 1, PROFILE_COLUMNS)
    const rank = (c: Condition): number =>
      c.kind === 'text' ? 0 : c.kind === 'set' ? 1 : c.kind === 'numeric' ? 2 : c.kind === 'presence' ? 3 : 4
    const walk = leaves
      .map((c) => ({ c, index: walkIndex(c, input) }))
      .filter((x): x is { c: Condition; index: string } => x.index !== undefined)
      .sort((a, b) => rank(a.c) - rank(b.c))[0]
    const hint = walk !== undefined ? ` INDEXED BY ${walk.index}` : input.fullScan ? ' NOT INDEXED' : ''
    return {
      sql: `SELECT count(*) FROM profiles${hint} WHERE ${projectFilter(projectId)} AND (${compiled.sql})`,
      params: compiled.params,
    }
  }
  const from: string[] = []
  const terms: string[] = []
  const params: unknown[] = []
  probes.forEach(({ leaf, index }, i) => {
    const alias = `p${i}`
    from.push(`profiles ${alias} INDEXED BY ${index}`)
    terms.push(`${alias}.${projectFilter(projectId)}`)
    if (i > 0) terms.push(`${alias}.user_id = p0.user_id`)
    const compiled = compileCondition(leaf, sqliteDialect, 1, {
      userId: `${alias}.user_id`,
      attrs: `${alias}.attributes`,
    })
    terms.push(`(${compiled.sql})`)
    params.push(...compiled.params)
  })
  if (others.length > 0) {
    const rest: Condition = { kind: 'all', of: others }
    const compiled = compileCondition(rest, sqliteDialect, 1, { userId: 'p0.user_id', attrs: 'p0.attributes' })
    terms.push(`(${compiled.sql})`)
    params.push(...compiled.params)
  }
  return { sql: `SELECT count(*) FROM ${from.join(', ')} WHERE ${terms.join(' AND ')}`, params }
}

function prepareStatements(db: Database.Database) {
  const p = (sql: string): Statement => db.prepare(sql)
  const profileColumns = PROFILE_SELECT
  const keyColumns =
    'k.id, k.project_id, p.name AS project_name, k.label, k.scopes, k.hash, k.created_at, k.last_used_at, k.revoked_at, k.expires_at, p.rate_limit AS project_rate_limit'
  return {
    begin: p('BEGIN IMMEDIATE'),
    savepoint: p('SAVEPOINT batch'),
    release: p('RELEASE batch'),
    rollbackTo: p('ROLLBACK TO batch'),
    commit: p('COMMIT'),
    rollback: p('ROLLBACK'),
    insertProject: p('INSERT INTO projects (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    projectByName: p('SELECT id, name, created_at FROM projects WHERE name = ?'),
    projectById: p('SELECT id FROM projects WHERE id = ?'),
    timeZoneOf: p('SELECT time_zone FROM projects WHERE id = ?').pluck(),
    setTimeZone: p('UPDATE projects SET time_zone = ? WHERE id = ?'),
    projectIds: p('SELECT id FROM projects').pluck(),
    insertKey: p('INSERT INTO api_keys (project_id, id, hash, label, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
    keyById: p(`SELECT ${keyColumns} FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = ?`),
    keyByHash: p(`SELECT ${keyColumns} FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.hash = ?`),
    keysOfProject: p(
      `SELECT ${keyColumns} FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.project_id = ? ORDER BY k.created_at, k.id`,
    ),
    revokeKey: p('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    touchKey: p('UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?'),
    updateProfile: p(
      'UPDATE profiles SET attributes = jsonb_patch(attributes, ?), updated_at = ? WHERE project_id = ? AND user_id = ?',
    ),
    insertProfile: p(
      "INSERT INTO profiles (project_id, user_id, attributes, created_at, updated_at) VALUES (?, ?, jsonb_patch('{}', ?), ?, ?)",
    ),
    advanceSeq: p('UPDATE projects SET change_seq = change_seq + ? WHERE id = ? RETURNING change_seq').pluck(),
    insertChange: p('INSERT INTO change_log (project_id, seq, user_id, changed_at) VALUES (?, ?, ?, ?)'),
    profile: p(`SELECT ${profileColumns} FROM profiles WHERE project_id = ? AND user_id = ?`),
    attributeIndexes: p('SELECT name, kind, index_name FROM attribute_indexes WHERE project_id = ?'),
    projectShare: p('SELECT users, (SELECT sum(users) FROM projects) AS total FROM projects WHERE id = ?'),
    deleteProfile: p('DELETE FROM profiles WHERE project_id = ? AND user_id = ?'),
    feedChanges: p(FEED_CHANGES_SQL),
    feedFirst: p(FEED_FIRST_SQL),
    feedAfter: p(FEED_AFTER_SQL),
    insertSegment: p(
      'INSERT INTO segments (project_id, id, name, where_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    segment: p('SELECT id, name, where_json, created_at, updated_at FROM segments WHERE project_id = ? AND id = ?'),
    segmentsOfProject: p(
      'SELECT id, name, where_json, created_at, updated_at FROM segments WHERE project_id = ? ORDER BY created_at, id',
    ),
    updateSegment: p('UPDATE segments SET name = ?, where_json = ?, updated_at = ? WHERE project_id = ? AND id = ?'),
    deleteSegment: p('DELETE FROM segments WHERE project_id = ? AND id = ?'),
    changeState: p('SELECT change_seq, pruned_seq FROM projects WHERE id = ?'),
    oldestChanges: p('SELECT seq, changed_at FROM change_log WHERE project_id = ? ORDER BY seq LIMIT ?'),
    deleteChanges: p('DELETE FROM change_log WHERE project_id = ? AND seq <= ?'),
    setPruned: p('UPDATE projects SET pruned_seq = max(pruned_seq, ?) WHERE id = ?'),
    addUsers: p('UPDATE projects SET users = users + ? WHERE id = ?'),
    insertRequestLog: p(
      `INSERT INTO request_log (project_id, time, method, path, key_id, key_label, request_id, status, duration_ms,
         users_created, users_updated, error, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
  }
}

function prepareIdempotencyStatements(db: Database.Database) {
  return {
    setRateLimit: db.prepare(
      'UPDATE projects SET rate_limit = ? WHERE name = ? RETURNING id, name, created_at, rate_limit',
    ),
    claim: db.prepare(
      `INSERT INTO idempotency_keys AS i (project_id, key, fingerprint, created_at) VALUES (@projectId, @key, @fingerprint, @now)
       ON CONFLICT (project_id, key) DO UPDATE
       SET fingerprint = excluded.fingerprint, status = NULL, response = NULL, created_at = excluded.created_at
       WHERE i.created_at < @expiredBefore OR (i.status IS NULL AND i.created_at < @abandonedBefore AND i.fingerprint = excluded.fingerprint)`,
    ),
    held: db.prepare('SELECT fingerprint, status, response FROM idempotency_keys WHERE project_id = ? AND key = ?'),
    complete: db.prepare('UPDATE idempotency_keys SET status = ?, response = ? WHERE project_id = ? AND key = ?'),
    release: db.prepare('DELETE FROM idempotency_keys WHERE project_id = ? AND key = ? AND status IS NULL'),
    prune: db.prepare('DELETE FROM idempotency_keys WHERE created_at < ?'),
  }
}

function settleAll(
  jobs: readonly PendingUpload[],
  touches: Map<string, { waiters: (() => void)[] }>,
  error: unknown,
): void {
  for (const job of jobs) job.reject(error)
  // A lost last-used stamp is harmless; the requests that touched the key must not fail for it.
  for (const touch of touches.values()) for (const done of touch.waiters) done()
}

function checkProjectName(name: string): void {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) {
    throw new TraitbaseError('BAD_REQUEST', 'A project name must be a non-empty string of at most 200 characters')
  }
}

function parseToken(token: string): number {
  const n = token.startsWith(TOKEN_PREFIX) ? Number(token.slice(TOKEN_PREFIX.length)) : NaN
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Not a change token of this SQLite store: "${token}"`)
  return n
}

/**
 * `sql` on `thread` when it is up, as `{ result }`; undefined when there is no thread or it died
 * under this read (the caller then reads on its own connection). A SQL error is the caller's.
 */
async function onThread(
  thread: SqliteReader | undefined,
  sql: string,
  params: readonly unknown[],
  mode: 'all' | 'value',
): Promise<{ result: unknown } | undefined> {
  if (thread?.available !== true) return undefined
  try {
    return { result: await thread.run(sql, params, mode) }
  } catch (error) {
    if (thread.available) throw error
    return undefined
  }
}

/** fsync of `path` on libuv's thread pool; a file that does not exist (any more) has nothing to sync. */
async function fsyncFile(path: string): Promise<void> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * A page read ahead of its caller: its failure is reported when the caller awaits it, and never as
 * an unhandled rejection if the caller stops reading first (or fails it later than it happened).
 */
function ahead<T>(read: Promise<T>): Promise<T> {
  read.catch(() => undefined)
  return read
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function toProfile(row: ProfileRow): Profile {
  const attributes = Object.create(null) as Record<string, string>
  const parsed = JSON.parse(row.attributes) as Record<string, string>
  for (const name of Object.keys(parsed)) attributes[name] = parsed[name] as string
  return { userId: row.user_id, attributes, createdAt: iso(row.created_at), updatedAt: iso(row.updated_at) }
}

/** JSON.parse keeps `__proto__` as an own key, which is all a ProfileState promises. */
function toState(row: StateRow): ProfileState {
  return { userId: row.user_id, attributes: JSON.parse(row.attributes) as Record<string, string> }
}

function toKey(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    projectId: row.project_id,
    projectName: row.project_name,
    label: row.label,
    scopes: row.scopes.split(',') as Scope[],
    hash: row.hash,
    createdAt: iso(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : iso(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : iso(row.revoked_at),
    expiresAt: row.expires_at === null ? null : iso(row.expires_at),
    projectRateLimit: row.project_rate_limit,
  }
}

interface AdminTokenRow {
  id: string
  label: string
  hash: string
  created_at: number
  last_used_at: number | null
  revoked_at: number | null
}

interface RequestLogRow {
  id: number
  project_id: number
  time: number
  method: string
  path: string
  key_id: string | null
  key_label: string | null
  request_id: string
  status: number
  duration_ms: number
  users_created: number | null
  users_updated: number | null
  error: string | null
  dry_run: number
}

const TOKEN_SELECT = 'SELECT id, label, hash, created_at, last_used_at, revoked_at FROM admin_tokens'

function toAdminToken(row: AdminTokenRow): AdminToken {
  return {
    id: row.id,
    label: row.label,
    hash: row.hash,
    createdAt: iso(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : iso(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : iso(row.revoked_at),
  }
}

function toSegment(row: SegmentRow): SavedSegment {
  return {
    id: row.id,
    name: row.name,
    where: JSON.parse(row.where_json) as unknown,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  }
}
