import pg from 'pg'
import { TraitbaseError } from '../../core/errors.js'
import type { Scope } from '../../core/scopes.js'
import type { Condition } from '../../core/segment.js'
import type { ProfilePatch, UploadBatch } from '../../core/upload.js'
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
import { compileCondition, postgresDialect, type CompiledSql } from '../sql-dialect.js'
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
import { ProjectNotIndexedError } from '../store.js'
import { startPruneTimer } from '../pruning.js'
import { checkTimeZone } from '../time-zone.js'
import { DEFAULT_CHANGE_RETENTION_MS } from '../store.js'
import type { Migration } from '../migration.js'
import {
  attributeValuesCountSql,
  attributeValuesScanSql,
  buildAttributeValues,
  dropAttributeValues,
} from './attribute-values.js'
import { applyCitusLayout, isCitus } from './citus-layout.js'
import { MIGRATION_LOCK_KEY, POSTGRES_MIGRATIONS } from './postgres-migrations.js'
import { keyOf, spreadDelete, spreadProject, spreadUpload } from './spread.js'
import { splitStatements } from './sql-statements.js'

/** Tuning of the PostgreSQL store. */
export interface PostgresStoreOptions extends StoreOptions {
  /** Connections in the pool. Default 12: enough to keep 2 cores busy while others wait on fsync. */
  readonly poolSize?: number
}

/** How much later than the server's statement timeout the client gives up on a query itself. */
const QUERY_TIMEOUT_MARGIN_MS = 2000
/** Rows per FETCH of the change feed: bounded memory whatever the size of the project. */
const CHANGE_PAGE = 1000
const TOKEN_PREFIX = 'p3:'
/** Change-log entries deleted per pruning statement. */
const PRUNE_CHUNK = 10_000
const PROFILE_COLUMNS = { userId: 'user_id', attrs: 'attributes' }
/** SQLSTATE of the write functions for a project spread since this process last looked (0003_spread). */
const SPREAD_STATE = 'TBSPR'

/**
 * Where a project's profiles are read: `FROM ${from}` with `params` as $1… A spread project (see
 * spread.ts) names every key of its buckets, so Citus runs the statement on every worker.
 */
export interface ProfileSource {
  readonly from: string
  readonly params: unknown[]
}

interface ProfileRow {
  user_id: string
  attributes: Record<string, string> | null
  created_at: Date | null
  updated_at: Date | null
}

interface KeyRow {
  id: string
  project_id: number
  project_name: string
  label: string
  scopes: string[]
  hash: string
  created_at: Date
  last_used_at: Date | null
  revoked_at: Date | null
  expires_at: Date | null
  project_rate_limit: number | null
}

interface SegmentRow {
  id: string
  name: string
  where_json: string
  created_at: Date
  updated_at: Date
}

const KEY_SELECT = `SELECT k.id, k.project_id, p.name AS project_name, k.label, k.scopes, k.hash, k.created_at,
  k.last_used_at, k.revoked_at, k.expires_at, p.rate_limit AS project_rate_limit FROM api_keys k JOIN projects p ON p.id = k.project_id`
const SEGMENT_COLUMNS = 'id, name, where_json, created_at, updated_at'

/**
 * The PostgreSQL store (pg Pool). Single-statement operations run on the pool (a statement is
 * atomic); multi-statement ones check out a client and use BEGIN/COMMIT/ROLLBACK, releasing it in
 * `finally`.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const
  /** The pool; exposed for tests and benchmarks, not for server code. */
  readonly pool: pg.Pool
  private readonly changeLog: boolean
  private touches = new Map<string, { at: Date; waiters: (() => void)[] }>()
  private touchScheduled = false
  /**
   * Keys of the projects known to be spread (spreading is for good). Any other project is read from
   * `profiles`; an empty answer there is checked against `projects.spread_keys` (a spread project has
   * no row in `profiles`), and writes are checked by the functions themselves.
   */
  private readonly spread = new Map<number, readonly string[]>()
  private pruneTimer: NodeJS.Timeout | undefined
  private closed = false
  /** Whether the database is a Citus coordinator: asked once (it does not change under a running server). */
  private citus: Promise<boolean> | undefined

  constructor(url: string, options: PostgresStoreOptions = {}) {
    this.changeLog = options.changeLog !== false
    this.pool = new pg.Pool({ connectionString: url, ...poolLimits(options) })
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined)
    if (this.changeLog && options.changeRetentionMs !== 0) {
      this.pruneTimer = startPruneTimer(
        (olderThan) => this.pruneChanges(olderThan),
        () => this.closed,
        options.changeRetentionMs ?? DEFAULT_CHANGE_RETENTION_MS,
        options.pruneIntervalMs ?? 60_000,
      )
    }
  }

  /**
   * One transaction per migration, each under a transaction-level advisory lock (servers starting
   * at once migrate one after the other; no session state, so it works behind PgBouncer in
   * transaction mode). The last one places the tables on Citus (see citus-layout.ts). `migrations`
   * is for tests that replay an upgrade from an earlier version.
   */
  async migrate(migrations: readonly Migration[] = POSTGRES_MIGRATIONS): Promise<void> {
    const client = await this.pool.connect()
    try {
      for (;;) {
        await client.query('BEGIN')
        try {
          await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
          await client.query(
            'CREATE TABLE IF NOT EXISTS traitbase_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
          )
          const done = new Set(
            (await client.query<{ id: string }>('SELECT id FROM traitbase_migrations')).rows.map((r) => r.id),
          )
          const next = migrations.find((m) => !done.has(m.id))
          if (next === undefined) {
            await applyCitusLayout(client)
            await client.query('COMMIT')
            return
          }
          for (const statement of splitStatements(next.sql)) await client.query(statement)
          await client.query('INSERT INTO traitbase_migrations (id) VALUES ($1)', [next.id])
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      }
    } finally {
      client.release()
    }
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.pruneTimer)
    if (this.touches.size > 0) await this.flushTouches()
    await this.pool.end()
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1')
  }

  async ensureProject(name: string): Promise<Project> {
    checkProjectName(name)
    await this.pool.query('INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name])
    const project = await this.findProject(name)
    if (project === undefined) throw new Error(`Project "${name}" vanished right after being created`)
    return project
  }

  async findProject(name: string): Promise<Project | undefined> {
    const { rows } = await this.pool.query<{ id: number; name: string; created_at: Date }>(
      'SELECT id, name, created_at FROM projects WHERE name = $1',
      [name],
    )
    const row = rows[0]
    return row && { id: row.id, name: row.name, createdAt: row.created_at.toISOString() }
  }

  async setProjectRateLimit(
    name: string,
    perMinute: number | null,
  ): Promise<{ project: Project; rateLimit: number | null } | undefined> {
    const { rows } = await this.pool.query<{ id: number; name: string; created_at: Date; rate_limit: number | null }>(
      'UPDATE projects SET rate_limit = $2 WHERE name = $1 RETURNING id, name, created_at, rate_limit',
      [name, perMinute],
    )
    const row = rows[0]
    return (
      row && {
        project: { id: row.id, name: row.name, createdAt: row.created_at.toISOString() },
        rateLimit: row.rate_limit,
      }
    )
  }

  async getProjectTimeZone(projectId: number): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ time_zone: string }>('SELECT time_zone FROM projects WHERE id = $1', [
      projectId,
    ])
    return rows[0]?.time_zone
  }

  async setProjectTimeZone(projectId: number, timeZone: string): Promise<string | undefined> {
    const zone = checkTimeZone(timeZone)
    const { rowCount } = await this.pool.query('UPDATE projects SET time_zone = $1 WHERE id = $2', [zone, projectId])
    return rowCount === 1 ? zone : undefined
  }

  async createKey(input: NewKey): Promise<KeyRecord> {
    const id = newKeyId()
    const { rowCount } = await this.pool.query(
      `INSERT INTO api_keys (project_id, id, hash, label, scopes)
       SELECT id, $2, $3, $4, $5 FROM projects WHERE id = $1`,
      [input.projectId, id, input.hash, input.label, input.scopes],
    )
    if (rowCount !== 1) throw new TraitbaseError('NOT_FOUND', `No project with id ${input.projectId}`)
    const { rows } = await this.pool.query<KeyRow>(`${KEY_SELECT} WHERE k.id = $1`, [id])
    return toKey(rows[0] as KeyRow)
  }

  async listKeys(projectId: number): Promise<KeyRecord[]> {
    const { rows } = await this.pool.query<KeyRow>(
      `${KEY_SELECT} WHERE k.project_id = $1 ORDER BY k.created_at, k.id`,
      [projectId],
    )
    return rows.map(toKey)
  }

  async revokeKey(keyId: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL',
      [keyId],
    )
    return rowCount === 1
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    const { rows } = await this.pool.query<KeyRow>(`${KEY_SELECT} WHERE k.hash = $1`, [hash])
    return rows[0] && toKey(rows[0])
  }

  /** Coalesced per event-loop turn: a key used by 1,000 requests a second costs a few row writes. */
  touchKey(keyId: string, at: Date): Promise<void> {
    return new Promise((resolve) => {
      const entry = this.touches.get(keyId)
      if (entry === undefined) this.touches.set(keyId, { at, waiters: [resolve] })
      else {
        if (at > entry.at) entry.at = at
        entry.waiters.push(resolve)
      }
      if (!this.touchScheduled) {
        this.touchScheduled = true
        setImmediate(() => void this.flushTouches())
      }
    })
  }

  private async flushTouches(): Promise<void> {
    this.touchScheduled = false
    const touches = this.touches
    this.touches = new Map()
    if (touches.size === 0) return
    const ids = [...touches.keys()]
    const ats = ids.map((id) => (touches.get(id) as { at: Date }).at.toISOString())
    try {
      await this.pool.query(
        `UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, t.at)
         FROM unnest($1::text[], $2::timestamptz[]) AS t(id, at) WHERE k.id = t.id`,
        [ids, ats],
      )
    } catch {
      // A lost last-used stamp is harmless; the requests that used the key must not fail for it.
    }
    for (const touch of touches.values()) for (const done of touch.waiters) done()
  }

  /**
   * One call of `traitbase_upload` (see the migrations), whatever the batch size: one statement is
   * atomic on its own, and on Citus a single call outside a transaction block is delegated whole to
   * the worker that holds the project, where the change log takes that worker's xid.
   */
  async applyUpload(projectId: number, batch: UploadBatch): Promise<UploadOutcome> {
    const patches = batch.patches
    if (patches.length === 0) return { created: 0, updated: 0, valuesWritten: 0 }
    const valuesWritten = checkStorable(patches)
    let keys = this.spread.get(projectId)
    if (keys === undefined) {
      try {
        return await this.applyLocalUpload(projectId, patches, valuesWritten)
      } catch (error) {
        keys = await this.spreadKeysAfter(error, projectId)
      }
    }
    const { created, total } = await spreadUpload(this.pool, projectId, keys, patches)
    if (total !== patches.length) {
      throw new Error(`Upsert wrote ${total} profiles for ${patches.length} patches; user ids must be distinct`)
    }
    return { created, updated: patches.length - created, valuesWritten }
  }

  private async applyLocalUpload(
    projectId: number,
    patches: readonly ProfilePatch[],
    valuesWritten: number,
  ): Promise<UploadOutcome> {
    // Sorted by the function in code point order, so overlapping batches lock rows in one order.
    const userIds: string[] = []
    const byUser = Object.create(null) as Record<string, ProfilePatch['attributes']>
    for (const patch of patches) {
      userIds.push(patch.userId)
      byUser[patch.userId] = patch.attributes
    }
    const { rows } = await this.pool.query<{ n_created: number; n_total: number }>(
      'SELECT n_created, n_total FROM traitbase_upload($1, $2, $3, $4)',
      [projectId, userIds, JSON.stringify(byUser), this.changeLog],
    )
    const row = rows[0] as { n_created: number; n_total: number }
    if (row.n_total !== patches.length) {
      throw new Error(`Upsert wrote ${row.n_total} profiles for ${patches.length} patches; user ids must be distinct`)
    }
    return { created: row.n_created, updated: patches.length - row.n_created, valuesWritten }
  }

  async getProfile(projectId: number, userId: string): Promise<Profile | undefined> {
    if (userId.includes('\0')) return undefined
    const read = async (source: ProfileSource): Promise<Profile | undefined> => {
      const params = [...source.params, userId]
      const { rows } = await this.pool.query<ProfileRow>(
        `SELECT user_id, attributes, created_at, updated_at FROM ${source.from} AND user_id = $${params.length}`,
        params,
      )
      return rows[0] && toProfile(rows[0])
    }
    const keys = this.spread.get(projectId)
    // One bucket: the statement goes to the one shard holding the user.
    if (keys !== undefined) return read(this.sourceOf(projectId, [keyOf(keys, userId)]))
    const found = await read(this.sourceOf(projectId))
    if (found !== undefined) return found
    const learned = await this.spreadKeysOf(projectId)
    return learned === undefined ? undefined : read(this.sourceOf(projectId, [keyOf(learned, userId)]))
  }

  /** The table and filter of the project's profiles; `keys` narrows a spread project to those buckets. */
  private sourceOf(projectId: number, keys?: readonly string[]): ProfileSource {
    return profileSource(projectId, keys ?? this.spread.get(projectId))
  }

  /**
   * Runs a read on the project's source; when it came back empty from `profiles`, the project may
   * have been spread since this process last looked: then it runs again on the spread table.
   */
  private async readProfiles<T>(
    projectId: number,
    read: (source: ProfileSource) => Promise<T>,
    empty: (t: T) => boolean,
  ): Promise<T> {
    const known = this.spread.has(projectId)
    const result = await read(this.sourceOf(projectId))
    if (known || !empty(result) || (await this.spreadKeysOf(projectId)) === undefined) return result
    return read(this.sourceOf(projectId))
  }

  /** Reads (and remembers) the project's spread keys; undefined when it is not spread. */
  private async spreadKeysOf(projectId: number): Promise<readonly string[] | undefined> {
    const { rows } = await this.pool.query<{ keys: string[] | null }>(
      'SELECT spread_keys::text[] AS keys FROM projects WHERE id = $1',
      [projectId],
    )
    const keys = rows[0]?.keys ?? undefined
    if (keys !== undefined) this.spread.set(projectId, keys)
    return keys
  }

  /** The keys of a project whose write function refused it as spread; anything else is rethrown. */
  private async spreadKeysAfter(error: unknown, projectId: number): Promise<readonly string[]> {
    if ((error as { code?: unknown }).code !== SPREAD_STATE) throw error
    const keys = await this.spreadKeysOf(projectId)
    if (keys === undefined) throw error
    return keys
  }

  /**
   * Citus only: spreads an empty project over `buckets` buckets on every worker (see spread.ts).
   * Refused with a 4xx TraitbaseError on plain PostgreSQL, for a project with profiles, or for
   * another bucket count than it has; the same count again changes nothing.
   */
  async spreadProject(
    projectId: number,
    buckets: number,
  ): Promise<{ keys: string[]; workers: number[]; already: boolean }> {
    const client = await this.pool.connect()
    try {
      const result = await spreadProject(client, projectId, buckets)
      this.spread.set(projectId, result.keys)
      return result
    } finally {
      client.release()
    }
  }

  async deleteProfile(projectId: number, userId: string): Promise<boolean> {
    if (userId.includes('\0')) return false
    let keys = this.spread.get(projectId)
    if (keys === undefined) {
      try {
        const { rows } = await this.pool.query<{ n: number }>('SELECT traitbase_delete($1, $2, $3) AS n', [
          projectId,
          userId,
          this.changeLog,
        ])
        return rows[0]?.n === 1
      } catch (error) {
        keys = await this.spreadKeysAfter(error, projectId)
      }
    }
    return spreadDelete(this.pool, projectId, keys, userId)
  }

  async scanProfiles(projectId: number, options: ScanOptions): Promise<Profile[]> {
    return this.readProfiles(
      projectId,
      (source) => this.scanSource(projectId, source, options),
      (rows) => rows.length === 0,
    )
  }

  private async scanSource(projectId: number, source: ProfileSource, options: ScanOptions): Promise<Profile[]> {
    // Walk the primary key in order. Without statistics (right after a bulk load, before autovacuum
    // analyzes the table) the planner may instead pick a bitmap scan that reads and sorts every
    // remaining row of the project for each page: quadratic over an export (measured: 9.2 s for
    // 200k users, against under 2 s in key order). An attribute index on (expression, user_id)
    // is walked in key order too, so an `eq` on an indexed attribute reads only its page.
    // The side table's ranges are walked in user_id order the same way (see attribute-values.ts).
    const client = await this.pool.connect()
    try {
      // One snapshot for the registry and the query: a concurrent drop or build is seen whole or not at all.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      await client.query('SET LOCAL enable_sort = off')
      await client.query('SET LOCAL enable_bitmapscan = off')
      const names = await this.valueIndexNames(client, projectId, source, options.where)
      const side = attributeValuesScanSql(projectId, options, names)
      // A plan priced with a disabled node looks expensive enough to compile (JIT): ~0.3 s for a page.
      if (side !== undefined) await client.query('SET LOCAL jit = off')
      const { sql, params } = side ?? postgresScanSql(source, options)
      const { rows } = await client.query<ProfileRow>(sql, params)
      await client.query('COMMIT')
      return rows.map(toProfile)
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    } finally {
      client.release()
    }
  }

  async countProfiles(projectId: number, where?: Condition): Promise<number> {
    return this.readProfiles(
      projectId,
      (source) => this.countSource(projectId, source, where),
      (n) => n === 0,
    )
  }

  private async countSource(projectId: number, source: ProfileSource, where?: Condition): Promise<number> {
    if (where === undefined || (await this.onCitus())) {
      const { sql, params } = postgresCountSql(source, where)
      const { rows } = await this.pool.query<{ n: string }>(sql, params)
      return Number(rows[0]?.n ?? 0)
    }
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const names = await this.valueIndexNames(client, projectId, source, where)
      const side = attributeValuesCountSql(projectId, where, names)
      if (side !== undefined) {
        // The side table's ranges come in user_id order: merge them (a hash join of a large range
        // costs more than walking it), and compile nothing for a count that takes milliseconds.
        await client.query('SET LOCAL enable_hashjoin = off')
        await client.query('SET LOCAL jit = off')
      }
      const { sql, params } = side ?? postgresCountSql(source, where)
      const { rows } = await client.query<{ n: string }>(sql, params)
      await client.query('COMMIT')
      return Number(rows[0]?.n ?? 0)
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    } finally {
      client.release()
    }
  }

  /** Asks on `client` when given (one already checked out: a pool of one must not wait for a second). */
  private onCitus(client?: pg.ClientBase): Promise<boolean> {
    this.citus ??=
      client === undefined
        ? this.pool.connect().then(async (own) => {
            try {
              return await isCitus(own)
            } finally {
              own.release()
            }
          })
        : isCitus(client)
    this.citus.catch(() => (this.citus = undefined))
    return this.citus
  }

  /**
   * The project's text attributes held in the side table (plain PostgreSQL; see attribute-values.ts),
   * read by `client` in the query's own snapshot; none for a spread project, on Citus, or without a condition.
   */
  private async valueIndexNames(
    client: pg.ClientBase,
    projectId: number,
    source: ProfileSource,
    where: Condition | undefined,
  ): Promise<ReadonlySet<string>> {
    if (where === undefined || source.params.length > 0 || (await this.onCitus(client))) return new Set()
    const { rows } = await client.query<{ name: string }>(
      `SELECT name FROM attribute_indexes WHERE project_id = $1 AND kind = 'text'`,
      [projectId],
    )
    return new Set(rows.map((r) => r.name))
  }

  async listAttributeIndexes(projectId: number): Promise<AttributeIndex[]> {
    const { rows } = await this.pool.query<{
      name: string
      kind: AttributeIndexKind
      index_name: string
      created_at: Date
    }>(
      'SELECT name, kind, index_name, created_at FROM attribute_indexes WHERE project_id = $1 ORDER BY name COLLATE "C", kind',
      [projectId],
    )
    return rows.map((r) => ({
      name: r.name,
      kind: r.kind,
      indexName: r.index_name,
      createdAt: r.created_at.toISOString(),
    }))
  }

  /**
   * A `text` index on plain PostgreSQL: the side table attribute_values, filled while the project's
   * writers wait (see attribute-values.ts). Otherwise CREATE INDEX CONCURRENTLY (uploads go on while
   * it builds; on Citus it builds on every shard of profiles), then the registry row, then ANALYZE so
   * the planner knows the expression's values. A build interrupted earlier leaves an invalid index of
   * the same name: it is dropped and rebuilt.
   */
  async createAttributeIndex(
    projectId: number,
    name: string,
    kind: AttributeIndexKind,
  ): Promise<{ index: AttributeIndex; created: boolean }> {
    checkAttributeName(name)
    checkIndexKind(kind)
    const project = await this.pool.query('SELECT 1 FROM projects WHERE id = $1', [projectId])
    if (project.rows.length === 0) throw new TraitbaseError('NOT_FOUND', `No project with id ${projectId}`)
    const indexName = attributeIndexName(projectId, name, kind)
    const { rows: found } = await this.pool.query<{ valid: boolean }>(
      'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
      [indexName],
    )
    if (found[0]?.valid === false) await this.pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${indexName}`)
    if (kind === 'text' && !(await this.onCitus())) {
      const client = await this.pool.connect()
      let created: boolean
      try {
        created = await buildAttributeValues(client, projectId, name, indexName)
      } finally {
        client.release()
      }
      const index = (await this.listAttributeIndexes(projectId)).find((i) => i.name === name && i.kind === kind)
      return { index: index as AttributeIndex, created }
    }
    // A spread project's rows (and its database-path queries) are in spread_profiles.
    const table = (await this.spreadKeysOf(projectId)) === undefined ? 'profiles' : 'spread_profiles'
    await this.pool.query(createAttributeIndexSql(postgresDialect, projectId, name, kind, true, table))
    const { rowCount } = await this.pool.query(
      'INSERT INTO attribute_indexes (project_id, name, kind, index_name) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [projectId, name, kind, indexName],
    )
    if (rowCount === 1) await this.pool.query(`ANALYZE ${table}`)
    const index = (await this.listAttributeIndexes(projectId)).find((i) => i.name === name && i.kind === kind)
    return { index: index as AttributeIndex, created: rowCount === 1 }
  }

  async dropAttributeIndex(projectId: number, name: string, kind: AttributeIndexKind): Promise<boolean> {
    checkAttributeName(name)
    checkIndexKind(kind)
    if (kind === 'text' && !(await this.onCitus())) {
      const client = await this.pool.connect()
      try {
        return await dropAttributeValues(client, projectId, name)
      } finally {
        client.release()
      }
    }
    // Registry row first: a failure in between leaves an index nobody lists, never a listed one that is gone.
    const { rowCount } = await this.pool.query(
      'DELETE FROM attribute_indexes WHERE project_id = $1 AND name = $2 AND kind = $3',
      [projectId, name, kind],
    )
    await this.pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${attributeIndexName(projectId, name, kind)}`)
    return rowCount === 1
  }

  async createSegment(projectId: number, name: string, where: unknown): Promise<SavedSegment> {
    const { rows } = await this.pool.query<SegmentRow>(
      `INSERT INTO segments (project_id, id, name, where_json) VALUES ($1, $2, $3, $4) RETURNING ${SEGMENT_COLUMNS}`,
      [projectId, newSegmentId(), name, JSON.stringify(where)],
    )
    return toSegment(rows[0] as SegmentRow)
  }

  async listSegments(projectId: number): Promise<SavedSegment[]> {
    const { rows } = await this.pool.query<SegmentRow>(
      `SELECT ${SEGMENT_COLUMNS} FROM segments WHERE project_id = $1 ORDER BY created_at, id`,
      [projectId],
    )
    return rows.map(toSegment)
  }

  async getSegment(projectId: number, id: string): Promise<SavedSegment | undefined> {
    const { rows } = await this.pool.query<SegmentRow>(
      `SELECT ${SEGMENT_COLUMNS} FROM segments WHERE project_id = $1 AND id = $2`,
      [projectId, id],
    )
    return rows[0] && toSegment(rows[0])
  }

  async updateSegment(projectId: number, id: string, name: string, where: unknown): Promise<SavedSegment | undefined> {
    const { rows } = await this.pool.query<SegmentRow>(
      `UPDATE segments SET name = $3, where_json = $4, updated_at = now() WHERE project_id = $1 AND id = $2
       RETURNING ${SEGMENT_COLUMNS}`,
      [projectId, id, name, JSON.stringify(where)],
    )
    return rows[0] && toSegment(rows[0])
  }

  async deleteSegment(projectId: number, id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM segments WHERE project_id = $1 AND id = $2', [
      projectId,
      id,
    ])
    return rowCount === 1
  }

  // ---- Administration ----

  async listProjects(): Promise<ProjectSummary[]> {
    await this.foldUserCounts()
    const { rows } = await this.pool.query<{
      id: number
      name: string
      created_at: Date
      last_upload_at: Date | null
      users: string
    }>('SELECT p.id, p.name, p.created_at, p.last_upload_at, p.users FROM projects p ORDER BY p.name')
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: r.created_at.toISOString(),
      users: Number(r.users),
      lastUploadAt: r.last_upload_at === null ? null : r.last_upload_at.toISOString(),
    }))
  }

  /**
   * Moves the appended user-count deltas into projects.users, atomically: deleted and summed in one
   * statement, so two processes folding at once never count a delta twice.
   */
  private async foldUserCounts(): Promise<void> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      try {
        // Deleting takes the rows' locks: a concurrent fold waits, then finds them gone.
        const { rows } = await client.query<{ project_id: number; delta: number }>(
          'DELETE FROM project_user_deltas RETURNING project_id, delta',
        )
        const totals = new Map<number, number>()
        for (const r of rows) totals.set(r.project_id, (totals.get(r.project_id) ?? 0) + r.delta)
        for (const [projectId, total] of totals) {
          if (total !== 0)
            await client.query('UPDATE projects SET users = users + $2 WHERE id = $1', [projectId, total])
        }
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
    } finally {
      client.release()
    }
  }

  async getProject(id: number): Promise<Project | undefined> {
    const { rows } = await this.pool.query<{ id: number; name: string; created_at: Date }>(
      'SELECT id, name, created_at FROM projects WHERE id = $1',
      [id],
    )
    const row = rows[0]
    return row && { id: row.id, name: row.name, createdAt: row.created_at.toISOString() }
  }

  async createProject(name: string): Promise<Project> {
    checkProjectName(name)
    const { rows } = await this.pool.query<{ id: number; name: string; created_at: Date }>(
      'INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at',
      [name],
    )
    const row = rows[0]
    if (row === undefined) throw new TraitbaseError('CONFLICT', `A project named "${name}" exists already`)
    return { id: row.id, name: row.name, createdAt: row.created_at.toISOString() }
  }

  async renameProject(id: number, name: string): Promise<Project | undefined> {
    checkProjectName(name)
    try {
      await this.pool.query('UPDATE projects SET name = $2 WHERE id = $1', [id, name])
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new TraitbaseError('CONFLICT', `A project named "${name}" exists already`)
      }
      throw error
    }
    return this.getProject(id)
  }

  async getKey(keyId: string): Promise<KeyRecord | undefined> {
    const { rows } = await this.pool.query<KeyRow>(`${KEY_SELECT} WHERE k.id = $1`, [keyId])
    return rows[0] && toKey(rows[0])
  }

  async rotateKey(
    projectId: number,
    keyId: string,
    replacement: NewKey,
    expiresAt: Date,
  ): Promise<{ key: KeyRecord; previous: KeyRecord } | undefined> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      try {
        const { rows } = await client.query<{ revoked: boolean; expired: boolean }>(
          `SELECT revoked_at IS NOT NULL AS revoked, coalesce(expires_at <= now(), false) AS expired
           FROM api_keys WHERE project_id = $1 AND id = $2 FOR UPDATE`,
          [projectId, keyId],
        )
        const old = rows[0]
        if (old === undefined) {
          await client.query('ROLLBACK')
          return undefined
        }
        if (old.revoked) throw new TraitbaseError('CONFLICT', `Key ${keyId} is revoked; create a new key`)
        if (old.expired) throw new TraitbaseError('CONFLICT', `Key ${keyId} has expired; create a new key`)
        const id = newKeyId()
        await client.query('INSERT INTO api_keys (project_id, id, hash, label, scopes) VALUES ($1, $2, $3, $4, $5)', [
          projectId,
          id,
          replacement.hash,
          replacement.label,
          replacement.scopes,
        ])
        await client.query(
          `UPDATE api_keys SET expires_at = least(coalesce(expires_at, 'infinity'), $2::timestamptz)
           WHERE project_id = $1 AND id = $3`,
          [projectId, new Date(Math.max(Date.now(), expiresAt.getTime())), keyId],
        )
        const both = await client.query<KeyRow>(`${KEY_SELECT} WHERE k.id = ANY($1::text[])`, [[id, keyId]])
        await client.query('COMMIT')
        const find = (k: string) => toKey(both.rows.find((r) => r.id === k) as KeyRow)
        return { key: find(id), previous: find(keyId) }
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
    } finally {
      client.release()
    }
  }

  async addKeyEvent(e: NewKeyEvent): Promise<void> {
    await this.pool.query(
      'INSERT INTO key_events (project_id, key_id, event, actor, detail) VALUES ($1, $2, $3, $4, $5)',
      [e.projectId, e.keyId, e.event, e.actor, e.detail ?? ''],
    )
  }

  async listKeyEvents(projectId: number, limit: number): Promise<KeyEvent[]> {
    const { rows } = await this.pool.query<{
      id: string
      project_id: number
      key_id: string
      event: KeyEvent['event']
      at: Date
      actor: string
      detail: string
    }>(
      'SELECT id, project_id, key_id, event, at, actor, detail FROM key_events WHERE project_id = $1 ORDER BY id DESC LIMIT $2',
      [projectId, limit],
    )
    return rows.map((r) => ({
      id: Number(r.id),
      projectId: r.project_id,
      keyId: r.key_id,
      event: r.event,
      at: r.at.toISOString(),
      actor: r.actor,
      detail: r.detail,
    }))
  }

  async getSetting(name: string): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ value: string }>('SELECT value FROM admin_settings WHERE name = $1', [
      name,
    ])
    return rows[0]?.value
  }

  async setSetting(name: string, value: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO admin_settings (name, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [name, value, new Date()],
    )
  }

  async createAdminToken(input: { label: string; hash: string }): Promise<AdminToken> {
    const { rows } = await this.pool.query<AdminTokenRow>(
      `INSERT INTO admin_tokens (id, hash, label) VALUES ($1, $2, $3) RETURNING ${TOKEN_COLUMNS}`,
      [newAdminTokenId(), input.hash, input.label],
    )
    return toAdminToken(rows[0] as AdminTokenRow)
  }

  async findAdminTokenByHash(hash: string): Promise<AdminToken | undefined> {
    const { rows } = await this.pool.query<AdminTokenRow>(`SELECT ${TOKEN_COLUMNS} FROM admin_tokens WHERE hash = $1`, [
      hash,
    ])
    return rows[0] && toAdminToken(rows[0])
  }

  async listAdminTokens(): Promise<AdminToken[]> {
    const { rows } = await this.pool.query<AdminTokenRow>(
      `SELECT ${TOKEN_COLUMNS} FROM admin_tokens ORDER BY created_at, id`,
    )
    return rows.map(toAdminToken)
  }

  async revokeAdminToken(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL',
      [id, new Date()],
    )
    return rowCount === 1
  }

  async touchAdminToken(id: string, at: Date): Promise<void> {
    await this.pool.query(
      'UPDATE admin_tokens SET last_used_at = greatest(last_used_at, $2::timestamptz) WHERE id = $1',
      [id, at],
    )
  }

  async createSession(session: { idHash: string; csrfToken: string; expiresAt: Date }): Promise<void> {
    await this.pool.query('INSERT INTO admin_sessions (id_hash, csrf_token, expires_at) VALUES ($1, $2, $3)', [
      session.idHash,
      session.csrfToken,
      session.expiresAt,
    ])
  }

  async findSession(idHash: string): Promise<AdminSession | undefined> {
    const { rows } = await this.pool.query<{ id_hash: string; csrf_token: string; created_at: Date; expires_at: Date }>(
      'SELECT id_hash, csrf_token, created_at, expires_at FROM admin_sessions WHERE id_hash = $1',
      [idHash],
    )
    const row = rows[0]
    return (
      row && {
        idHash: row.id_hash,
        csrfToken: row.csrf_token,
        createdAt: row.created_at.toISOString(),
        expiresAt: row.expires_at.toISOString(),
      }
    )
  }

  async extendSession(idHash: string, expiresAt: Date): Promise<void> {
    await this.pool.query(
      'UPDATE admin_sessions SET expires_at = greatest(expires_at, $2::timestamptz) WHERE id_hash = $1',
      [idHash, expiresAt],
    )
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.pool.query('DELETE FROM admin_sessions WHERE id_hash = $1', [idHash])
  }

  async deleteAllSessions(): Promise<void> {
    await this.pool.query('DELETE FROM admin_sessions')
  }

  async recordLoginFailure(ip: string, at: Date): Promise<void> {
    await this.pool.query('INSERT INTO admin_login_failures (ip, at) VALUES ($1, $2)', [ip, at])
  }

  async countLoginFailures(ip: string | null, since: Date): Promise<{ count: number; oldest: string | null }> {
    const { rows } = await this.pool.query<{ n: number; oldest: Date | null }>(
      ip === null
        ? 'SELECT count(*)::int AS n, min(at) AS oldest FROM admin_login_failures WHERE at >= $1'
        : 'SELECT count(*)::int AS n, min(at) AS oldest FROM admin_login_failures WHERE at >= $1 AND ip = $2',
      ip === null ? [since] : [since, ip],
    )
    const row = rows[0] as { n: number; oldest: Date | null }
    return { count: row.n, oldest: row.oldest === null ? null : row.oldest.toISOString() }
  }

  async clearLoginFailures(ip: string): Promise<void> {
    await this.pool.query('DELETE FROM admin_login_failures WHERE ip = $1', [ip])
  }

  /** One multi-row INSERT through unnest: a flush of hundreds of entries is one round trip. */
  async appendRequestLog(entries: readonly RequestLogEntry[]): Promise<void> {
    if (entries.length === 0 || this.closed) return
    const col = <T>(f: (e: RequestLogEntry) => T): T[] => entries.map(f)
    await this.pool.query(
      `INSERT INTO request_log (project_id, time, method, path, key_id, key_label, request_id, status, duration_ms,
         users_created, users_updated, error, dry_run)
       SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::int[], $9::float8[], $10::int[], $11::int[], $12::text[], $13::boolean[])`,
      [
        col((e) => e.projectId),
        col((e) => new Date(e.time)),
        col((e) => e.method),
        col((e) => e.path),
        col((e) => e.keyId),
        col((e) => e.keyLabel),
        col((e) => e.requestId),
        col((e) => e.status),
        col((e) => e.durationMs),
        col((e) => e.usersCreated),
        col((e) => e.usersUpdated),
        col((e) => e.error),
        col((e) => e.dryRun),
      ],
    )
    const lastUpload = new Map<number, number>()
    for (const e of entries)
      if (e.upload) lastUpload.set(e.projectId, Math.max(lastUpload.get(e.projectId) ?? 0, e.time))
    for (const [projectId, at] of lastUpload) {
      await this.pool.query(
        'UPDATE projects SET last_upload_at = greatest(last_upload_at, $2::timestamptz) WHERE id = $1',
        [projectId, new Date(at)],
      )
    }
  }

  async listRequestLog(projectId: number, q: RequestLogQuery): Promise<RequestLogRecord[]> {
    const params: unknown[] = [projectId]
    let sql = 'SELECT * FROM request_log WHERE project_id = $1'
    if (q.statusClass !== undefined) {
      params.push(q.statusClass * 100, q.statusClass * 100 + 100)
      sql += ` AND status >= $${params.length - 1} AND status < $${params.length}`
    }
    if (q.keyId !== undefined) {
      params.push(q.keyId)
      sql += ` AND key_id = $${params.length}`
    }
    if (q.before !== undefined) {
      params.push(q.before)
      sql += ` AND id < $${params.length}`
    }
    if (q.after !== undefined) {
      params.push(q.after)
      sql += ` AND id > $${params.length}`
    }
    params.push(q.limit)
    sql += ` ORDER BY id DESC LIMIT $${params.length}`
    const { rows } = await this.pool.query<{
      id: string
      project_id: number
      time: Date
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
      dry_run: boolean
    }>(sql, params)
    return rows.map((r) => ({
      id: Number(r.id),
      projectId: r.project_id,
      time: r.time.toISOString(),
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
      dryRun: r.dry_run,
    }))
  }

  /** Statements that each touch one project (one shard on Citus), plus one by time. */
  async pruneAdminData(options: { maxPerProject: number; olderThan: Date; now: Date }): Promise<number> {
    let deleted = (await this.pool.query('DELETE FROM request_log WHERE time < $1', [options.olderThan])).rowCount ?? 0
    const { rows: projects } = await this.pool.query<{ id: number }>('SELECT id FROM projects')
    for (const { id } of projects) {
      if (this.closed) return deleted
      const { rowCount } = await this.pool.query(
        `DELETE FROM request_log WHERE project_id = $1
           AND id < (SELECT id FROM request_log WHERE project_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)`,
        [id, options.maxPerProject - 1],
      )
      deleted += rowCount ?? 0
    }
    await this.foldUserCounts()
    await this.pool.query('DELETE FROM admin_sessions WHERE expires_at <= $1', [options.now])
    await this.pool.query('DELETE FROM admin_login_failures WHERE at < $1', [
      new Date(options.now.getTime() - 24 * 3600_000),
    ])
    return deleted
  }

  async listUsers(projectId: number, options: ListUsersOptions): Promise<UserSummary[]> {
    return this.readProfiles(
      projectId,
      (source) => this.listSource(source, options),
      (users) => users.length === 0,
    )
  }

  private async listSource(source: ProfileSource, options: ListUsersOptions): Promise<UserSummary[]> {
    const params: unknown[] = [...source.params]
    let sql = `SELECT user_id, created_at, updated_at FROM ${source.from}`
    if (options.prefix !== undefined && options.prefix !== '') {
      if (options.prefix.includes('\0')) return []
      params.push(options.prefix)
      sql += ` AND user_id >= $${params.length}`
      const upper = prefixUpperBound(options.prefix)
      if (upper !== undefined) {
        params.push(upper)
        sql += ` AND user_id < $${params.length}`
      } else {
        params.push([...options.prefix].length, options.prefix)
        sql += ` AND left(user_id, $${params.length - 1}) = $${params.length}`
      }
    }
    if (options.afterUserId !== undefined) {
      if (options.afterUserId.includes('\0')) return []
      params.push(options.afterUserId)
      sql += ` AND user_id > $${params.length}`
    }
    params.push(options.limit)
    sql += ` ORDER BY user_id LIMIT $${params.length}`
    const { rows } = await this.pool.query<{ user_id: string; created_at: Date; updated_at: Date }>(sql, params)
    return rows.map((r) => ({
      userId: r.user_id,
      createdAt: r.created_at.toISOString(),
      updatedAt: r.updated_at.toISOString(),
    }))
  }

  /**
   * Two single-row statements, each routed to one shard on Citus: take the key when it is free,
   * expired or abandoned (one atomic upsert: of racing claims exactly one gets the row back), else
   * read who holds it. A holder that vanished between the two (released) means try again.
   */
  async claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyState> {
    for (;;) {
      const taken = await this.pool.query(
        `INSERT INTO idempotency_keys AS i (project_id, key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, key) DO UPDATE
         SET fingerprint = excluded.fingerprint, status = NULL, response = NULL, created_at = excluded.created_at
         WHERE i.created_at < $5 OR (i.status IS NULL AND i.created_at < $6 AND i.fingerprint = excluded.fingerprint)
         RETURNING 1`,
        [claim.projectId, claim.key, claim.fingerprint, claim.now, claim.expiredBefore, claim.abandonedBefore],
      )
      if (taken.rowCount === 1) return { kind: 'claimed' }
      const { rows } = await this.pool.query<{ fingerprint: string; status: number | null; response: string | null }>(
        'SELECT fingerprint, status, response FROM idempotency_keys WHERE project_id = $1 AND key = $2',
        [claim.projectId, claim.key],
      )
      const row = rows[0]
      if (row !== undefined) return idempotencyState(row, claim.fingerprint)
    }
  }

  async completeIdempotencyKey(projectId: number, key: string, status: number, body: string): Promise<void> {
    await this.pool.query('UPDATE idempotency_keys SET status = $3, response = $4 WHERE project_id = $1 AND key = $2', [
      projectId,
      key,
      status,
      body,
    ])
  }

  async releaseIdempotencyKey(projectId: number, key: string): Promise<void> {
    await this.pool.query('DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND status IS NULL', [
      projectId,
      key,
    ])
  }

  async pruneIdempotencyKeys(olderThan: Date): Promise<number> {
    const { rowCount } = await this.pool.query('DELETE FROM idempotency_keys WHERE created_at < $1', [olderThan])
    return rowCount ?? 0
  }

  /**
   * Reads in one REPEATABLE READ snapshot, and the token is that snapshot (`pg_snapshot` text).
   * The next read takes exactly the entries its snapshot shows but the token's did not
   * (`pg_visible_in_snapshot`), so transactions that commit out of xid order are neither missed
   * nor read twice, and long transactions elsewhere on the cluster cost nothing.
   */
  readChanges(projectId: number, token: string | null): ChangeFeed {
    const since = token === null ? null : parseToken(token)
    let next: string | undefined
    const pool = this.pool
    const changeLog = this.changeLog
    async function* pages(): AsyncGenerator<ChangePage> {
      const client = await pool.connect()
      let open = false
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
        open = true
        // Names change_horizon, distributed by project_id: on Citus the whole statement is routed to
        // the worker holding the project, so the snapshot is that node's, the node whose xids the
        // upload function wrote, and the cursor below reads in the same remote transaction.
        const { rows } = await client.query<{ snapshot: string; node: string; pruned: string | null; spread: boolean }>(
          `SELECT pg_current_snapshot()::text AS snapshot,
             (SELECT system_identifier::text FROM pg_control_system()) AS node,
             (SELECT pruned_xid::text FROM change_horizon WHERE project_id = $1) AS pruned,
             EXISTS (SELECT 1 FROM projects WHERE id = $1 AND spread_keys IS NOT NULL) AS spread`,
          [projectId],
        )
        const state = rows[0] as { snapshot: string; node: string; pruned: string | null; spread: boolean }
        // A spread project has no feed (its writes span workers: no one node's xids and snapshot).
        if (state.spread) throw new ProjectNotIndexedError(projectId)
        // Without a change log (benchmark baseline) every read starts over: slow but never wrong.
        // A token of another node (the project's shards moved, or another database) means nothing
        // here: xids of different servers are unrelated, so the read starts over.
        const reset =
          !changeLog ||
          since === null ||
          since.node !== state.node ||
          (state.pruned !== null && BigInt(since.xmin) <= BigInt(state.pruned))
        if (reset) {
          await client.query(
            // In user_id order (the primary key's), like SQLite's: the segment index then gets its
            // user ordinals already sorted and never sorts a million ids for the first page.
            `DECLARE feed NO SCROLL CURSOR FOR
             SELECT user_id, attributes FROM profiles WHERE project_id = $1 ORDER BY user_id`,
            [projectId],
          )
        } else {
          await client.query(
            `DECLARE feed NO SCROLL CURSOR FOR
             SELECT c.user_id, p.attributes
             FROM (
               SELECT DISTINCT user_id FROM change_log
               WHERE project_id = $1 AND xid >= pg_snapshot_xmin($2::pg_snapshot)
                 AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)
             ) c
             LEFT JOIN profiles p ON p.project_id = $1 AND p.user_id = c.user_id`,
            [projectId, since.snapshot],
          )
        }
        let first = true
        for (;;) {
          const page = await client.query<Pick<ProfileRow, 'user_id' | 'attributes'>>(`FETCH ${CHANGE_PAGE} FROM feed`)
          const upserts: ProfileState[] = []
          const deletedUserIds: string[] = []
          for (const row of page.rows) {
            // pg parses jsonb with JSON.parse: `__proto__` is an own key, as ProfileState promises.
            if (row.attributes === null) deletedUserIds.push(row.user_id)
            else upserts.push({ userId: row.user_id, attributes: row.attributes })
          }
          if (first || page.rows.length > 0) yield { reset: reset && first, upserts, deletedUserIds }
          first = false
          if (page.rows.length < CHANGE_PAGE) break
        }
        await client.query('COMMIT')
        open = false
        next = `${TOKEN_PREFIX}${state.node}:${state.snapshot}`
      } finally {
        if (open) await client.query('ROLLBACK').catch(() => undefined)
        client.release()
      }
    }
    return {
      pages: pages(),
      token() {
        if (next === undefined) throw new Error('token() is valid only after every page was read')
        return next
      },
    }
  }

  /**
   * Citus only: gives the project a shard group of its own (`isolate_tenant_to_new_shard`, all
   * co-located tables) and moves it to the worker holding the fewest shards of the group, other
   * than the one it is on, so a large tenant stops sharing a worker. Writes to the project block
   * while its rows are copied (`block_writes`: no logical replication needed); reads go on. The
   * change feed notices the move (its token names the node) and starts over once.
   */
  async isolateProject(projectId: number): Promise<{ shardId: string; nodePort: number; movedFrom: number }> {
    const { rows } = await this.pool.query<{ shard: string }>(
      `SELECT isolate_tenant_to_new_shard('profiles', $1::integer, 'CASCADE', shard_transfer_mode => 'block_writes')::text AS shard`,
      [projectId],
    )
    const shardId = (rows[0] as { shard: string }).shard
    const { rows: nodes } = await this.pool.query<{ host: string; port: number; shards: number; here: boolean }>(
      `SELECT n.nodename AS host, n.nodeport AS port,
         (SELECT count(*)::int FROM pg_dist_placement pl JOIN pg_dist_shard s USING (shardid)
          WHERE pl.groupid = n.groupid AND s.logicalrelid = 'profiles'::regclass) AS shards,
         EXISTS (SELECT 1 FROM pg_dist_placement pl WHERE pl.shardid = $1::bigint AND pl.groupid = n.groupid) AS here
       FROM pg_dist_node n WHERE n.shouldhaveshards AND n.isactive AND n.noderole = 'primary'
       ORDER BY here DESC, shards, n.nodeport`,
      [shardId],
    )
    const from = nodes.find((n) => n.here)
    if (from === undefined) throw new Error(`Shard ${shardId} has no placement on an active worker`)
    const to = nodes.find((n) => !n.here)
    if (to === undefined) return { shardId, nodePort: from.port, movedFrom: from.port }
    await this.pool.query(
      `SELECT citus_move_shard_placement($1::bigint, $2, $3, $4, $5, shard_transfer_mode => 'block_writes')`,
      [shardId, from.host, from.port, to.host, to.port],
    )
    await this.pool.query('SELECT traitbase_restart_changes($1)', [projectId])
    return { shardId, nodePort: to.port, movedFrom: from.port }
  }

  /**
   * Per project, in chunks of {@link PRUNE_CHUNK}, by `traitbase_prune_changes` (see the
   * migrations): on Citus each call runs on the worker holding the project, where "below the oldest
   * running xid" is about the xids the log holds. The horizon moves with the deleted entries and
   * stays below every later reader's snapshot xmin: a reader resets only when its own token is
   * older than the horizon.
   */
  async pruneChanges(olderThan: Date): Promise<number> {
    let deleted = 0
    const { rows: projects } = await this.pool.query<{ id: number }>('SELECT id FROM projects ORDER BY id')
    for (const { id } of projects) {
      for (;;) {
        if (this.closed) return deleted
        const { rows } = await this.pool.query<{ n: number }>('SELECT traitbase_prune_changes($1, $2, $3) AS n', [
          id,
          olderThan,
          PRUNE_CHUNK,
        ])
        const n = rows[0]?.n ?? 0
        deleted += n
        if (n < PRUNE_CHUNK) break
      }
    }
    return deleted
  }
}

/**
 * PostgreSQL text cannot hold U+0000: refused as the client's mistake rather than failing with a 500
 * (core validation refuses it too; this guards direct callers such as the bulk path). Returns the
 * number of values set, counted in the same pass.
 */
function checkStorable(patches: readonly ProfilePatch[]): number {
  let valuesWritten = 0
  for (const patch of patches) {
    if (patch.userId.includes('\0')) {
      throw new TraitbaseError('VALIDATION_FAILED', 'user_id: contains U+0000 (NUL), which cannot be stored')
    }
    for (const name in patch.attributes) {
      const value = patch.attributes[name]
      if (name.includes('\0') || (value !== null && value !== undefined && value.includes('\0'))) {
        throw new TraitbaseError(
          'VALIDATION_FAILED',
          `user "${patch.userId}": attribute "${name.replace(/\0/g, '\\0')}" contains U+0000 (NUL), which cannot be stored`,
        )
      }
      if (value !== null && value !== undefined) valuesWritten++
    }
  }
  return valuesWritten
}

function checkProjectName(name: string): void {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200 || name.includes('\0')) {
    throw new TraitbaseError('BAD_REQUEST', 'A project name must be a non-empty string of at most 200 characters')
  }
}

/**
 * A token is the system identifier of the node that took the snapshot and that `pg_snapshot` in
 * text form (`node:xmin:xmax:xip,…`), behind a version prefix.
 */
function parseToken(token: string): { node: string; snapshot: string; xmin: string } {
  const body = token.startsWith(TOKEN_PREFIX) ? token.slice(TOKEN_PREFIX.length) : ''
  const m = /^([0-9]{1,20}):(([0-9]{1,20}):[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?)$/.exec(body)
  if (m === null || body.length > 100_000)
    throw new Error(`Not a change token of this PostgreSQL store: "${token.slice(0, 40)}"`)
  return { node: m[1] as string, snapshot: m[2] as string, xmin: m[3] as string }
}

/**
 * The database path's page query. The project id is a literal, so a partial attribute index
 * (`WHERE project_id = <id>`) matches under any plan; values stay bound parameters. Exported for the plan tests.
 */
export function postgresScanSql(source: ProfileSource | number, options: ScanOptions): CompiledSql {
  const { from, params: sourceParams } = typeof source === 'number' ? profileSource(source) : source
  const params: unknown[] = [...sourceParams]
  let sql = `SELECT user_id, attributes, created_at, updated_at FROM ${from}`
  if (options.afterUserId !== undefined) {
    params.push(options.afterUserId)
    sql += ` AND user_id > $${params.length}`
  }
  if (options.where !== undefined) {
    const compiled = compileCondition(options.where, postgresDialect, params.length + 1, PROFILE_COLUMNS)
    sql += ` AND (${compiled.sql})`
    params.push(...compiled.params)
  }
  params.push(options.limit)
  sql += ` ORDER BY user_id LIMIT $${params.length}`
  return { sql, params }
}

/** The database path's count query (see {@link postgresScanSql}); every profile of the project without a condition. */
export function postgresCountSql(source: ProfileSource | number, where?: Condition): CompiledSql {
  const { from, params } = typeof source === 'number' ? profileSource(source) : source
  if (where === undefined) return { sql: `SELECT count(*)::bigint AS n FROM ${from}`, params: [...params] }
  const compiled = compileCondition(where, postgresDialect, params.length + 1, PROFILE_COLUMNS)
  return {
    sql: `SELECT count(*)::bigint AS n FROM ${from} AND (${compiled.sql})`,
    params: [...params, ...compiled.params],
  }
}

/**
 * Where a project's profiles are read: `FROM ${from}` with `params` as $1… The project id is a
 * literal, so a partial attribute index (`WHERE project_id = <id>`) matches under any plan. A spread
 * project (see spread.ts) names every key of its buckets (or of those given), so Citus runs the
 * statement on every worker.
 */
function profileSource(projectId: number, spreadKeys?: readonly string[]): ProfileSource {
  if (spreadKeys === undefined) return { from: `profiles WHERE ${projectFilter(projectId)}`, params: [] }
  return {
    from: `spread_profiles WHERE ${projectFilter(projectId)} AND dist_key = ANY($1::bigint[])`,
    params: [spreadKeys],
  }
}

function toProfile(row: ProfileRow): Profile {
  const attributes = Object.create(null) as Record<string, string>
  const parsed = row.attributes ?? {}
  for (const name of Object.keys(parsed)) attributes[name] = parsed[name] as string
  return {
    userId: row.user_id,
    attributes,
    createdAt: (row.created_at as Date).toISOString(),
    updatedAt: (row.updated_at as Date).toISOString(),
  }
}

function toKey(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    projectId: row.project_id,
    projectName: row.project_name,
    label: row.label,
    scopes: row.scopes as Scope[],
    hash: row.hash,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at === null ? null : row.last_used_at.toISOString(),
    revokedAt: row.revoked_at === null ? null : row.revoked_at.toISOString(),
    expiresAt: row.expires_at === null ? null : row.expires_at.toISOString(),
    projectRateLimit: row.project_rate_limit,
  }
}

interface AdminTokenRow {
  id: string
  label: string
  hash: string
  created_at: Date
  last_used_at: Date | null
  revoked_at: Date | null
}

const TOKEN_COLUMNS = 'id, label, hash, created_at, last_used_at, revoked_at'

function toAdminToken(row: AdminTokenRow): AdminToken {
  return {
    id: row.id,
    label: row.label,
    hash: row.hash,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at === null ? null : row.last_used_at.toISOString(),
    revokedAt: row.revoked_at === null ? null : row.revoked_at.toISOString(),
  }
}

function toSegment(row: SegmentRow): SavedSegment {
  return {
    id: row.id,
    name: row.name,
    where: JSON.parse(row.where_json) as unknown,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  }
}

/**
 * Connection limits (see {@link StoreOptions}): a bounded pool, a bounded wait for a connection, and
 * a statement timeout sent as a startup parameter (the server cancels the statement and frees its
 * locks) unless a pooler that refuses it sits in between; the client-side `query_timeout` a little
 * later is the backstop in every case, so a request never waits on the database for ever.
 */
function poolLimits(options: StoreOptions): pg.PoolConfig {
  const statementMs = options.statementTimeoutMs ?? 0
  return {
    max: options.poolSize ?? 12,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 0,
    ...(statementMs > 0
      ? {
          query_timeout: statementMs + QUERY_TIMEOUT_MARGIN_MS,
          ...(options.pgbouncer === true ? {} : { statement_timeout: statementMs }),
        }
      : {}),
  }
}
