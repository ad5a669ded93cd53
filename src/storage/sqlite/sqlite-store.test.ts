import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import type * as FsPromises from 'node:fs/promises'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import type Database from 'better-sqlite3'
import { evaluateCondition, parseCondition, resolveDates, type Condition } from '../../core/segment.js'
import { INDEXED_SHAPES, loadShapeProfiles, UNINDEXED_SHAPE } from '../attribute-index-plans.js'
import { attributeIndexName, createAttributeIndexSql } from '../attribute-index.js'
import { sqliteDialect } from '../sql-dialect.js'
import { openStore } from '../open-store.js'
import { describeStoreContract, type StoreFixture } from '../store.contract.js'
import type { UploadBatch } from '../../core/upload.js'
import type { ChangePage, Store } from '../store.js'
import { SqliteStore, sqliteCountSql, sqliteScanSql } from './sqlite-store.js'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js'

const dir = mkdtempSync(join(tmpdir(), 'traitbase-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let failTriggers = 0
function failWritesOf(store: SqliteStore, userId: string): Promise<void> {
  // TEMP triggers live on this connection only and still guard main.profiles.
  for (const event of ['INSERT', 'UPDATE']) {
    store.database
      .prepare(
        `CREATE TEMP TRIGGER fail_${event.toLowerCase()}_${++failTriggers} BEFORE ${event} ON main.profiles
         WHEN NEW.user_id = ${JSON.stringify(userId).replace(/"/g, "'")} BEGIN SELECT RAISE(ABORT, 'forced failure'); END`,
      )
      .run()
  }
  return Promise.resolve()
}

describeStoreContract(
  'sqlite :memory:',
  async (): Promise<StoreFixture> => {
    const store = (await openStore('sqlite::memory:')) as SqliteStore
    return {
      store,
      failWritesOf: (userId) => failWritesOf(store, userId),
      openSecond: undefined,
      openWithoutChangeLog: () => openStore('sqlite::memory:', { changeLog: false }),
      close: () => store.close(),
    }
  },
  false,
)

describeStoreContract('sqlite file', async (): Promise<StoreFixture> => {
  const url = `sqlite:${join(dir, 'contract.db')}`
  const store = (await openStore(url)) as SqliteStore
  return {
    store,
    failWritesOf: (userId) => failWritesOf(store, userId),
    openSecond: () => openStore(url),
    openWithoutChangeLog: () => openStore(`sqlite:${join(dir, 'no-log.db')}`, { changeLog: false }),
    close: () => store.close(),
  }
})

describe('sqlite specifics', () => {
  test('openStore creates the folder and data survives closing and reopening', async () => {
    const url = `sqlite:${join(dir, 'nested', 'deeper', 'x.db')}`
    const store = await openStore(url)
    const p = await store.ensureProject('durable')
    await store.applyUpload(p.id, {
      rows: 1,
      patches: [{ userId: 'u', attributes: Object.assign(Object.create(null), { a: '1' }) }],
    })
    await store.close()
    const again = await openStore(url)
    assert.deepEqual({ ...(await again.getProfile(p.id, 'u'))?.attributes }, { a: '1' })
    await again.close()
  })

  test('two stores migrating one new file at once both succeed', async () => {
    const filename = join(dir, 'race.db')
    const a = new SqliteStore(filename)
    const b = new SqliteStore(filename)
    await Promise.all([a.migrate(), b.migrate()])
    const count = a.database.prepare('SELECT count(*) FROM traitbase_migrations').pluck().get()
    assert.equal(count, SQLITE_MIGRATIONS.length, 'each migration recorded once')
    await Promise.all([a.close(), b.close()])
  })

  test('WAL and durable synchronous mode are on for files', async () => {
    const store = (await openStore(`sqlite:${join(dir, 'pragmas.db')}`)) as SqliteStore
    assert.equal(store.database.pragma('journal_mode', { simple: true }), 'wal')
    assert.equal(store.database.pragma('synchronous', { simple: true }), 2)
    await store.close()
  })

  test('the request log is written without an fsync of its own, and the connection is durable again after', async () => {
    const store = (await openStore(`sqlite:${join(dir, 'request-log-sync.db')}`)) as SqliteStore
    const p = (await store.ensureProject('log')).id
    // The pragmas the store sets around the log's transaction, and whether its rows were written in between.
    const calls: string[] = []
    const pragma = store.database.pragma.bind(store.database)
    store.database.pragma = ((source: string, options?: Database.PragmaOptions) => {
      if (source.startsWith('synchronous =')) {
        calls.push(`${source} (rows ${store.database.prepare('SELECT count(*) FROM request_log').pluck().get()})`)
      }
      return pragma(source, options)
    }) as typeof store.database.pragma
    const entry = {
      projectId: p,
      time: Date.now(),
      method: 'POST',
      path: '/v1/user/profiles',
      keyId: null,
      keyLabel: null,
      requestId: 'r1',
      status: 200,
      durationMs: 3,
      usersCreated: 1,
      usersUpdated: 0,
      error: null,
      dryRun: false,
      upload: true,
    }
    await store.appendRequestLog([entry, { ...entry, requestId: 'r2' }])
    store.database.pragma = pragma
    assert.deepEqual(calls, ['synchronous = NORMAL (rows 0)', 'synchronous = FULL (rows 2)'])
    assert.equal(store.database.pragma('synchronous', { simple: true }), 2, 'FULL again after')
    assert.equal(store.database.prepare('SELECT count(*) FROM request_log').pluck().get(), 2)
    await store.close()
  })

  test('many uploads queued in one turn share one transaction but fail alone', async () => {
    const store = (await openStore('sqlite::memory:')) as SqliteStore
    const p = (await store.ensureProject('group')).id
    const batches = Array.from({ length: 50 }, (_, i) => ({
      rows: 1,
      patches: [{ userId: `u${i}`, attributes: Object.assign(Object.create(null), { i: String(i) }) }],
    }))
    await failWritesOf(store, 'u25')
    const results = await Promise.allSettled(batches.map((b) => store.applyUpload(p, b)))
    assert.deepEqual(
      results.map((r, i) => (r.status === 'rejected' ? i : -1)).filter((i) => i >= 0),
      [25],
    )
    const profiles = await store.scanProfiles(p, { limit: 100 })
    assert.equal(profiles.length, 49)
    // One flush, one transaction: every profile carries the same commit timestamp.
    assert.equal(new Set(profiles.map((x) => x.updatedAt)).size, 1)
    await store.close()
    await assert.rejects(store.applyUpload(p, batches[0] as never), /closed/)
  })

  test('a group commit on a file commits without an fsync on the event loop and is acknowledged after one of the WAL off it', async () => {
    const file = join(dir, 'wal-sync.db')
    const store = new SqliteStore(file)
    await store.migrate()
    const p = (await store.ensureProject('wal')).id
    const one = (userId: string): UploadBatch => ({
      rows: 1,
      patches: [{ userId, attributes: Object.assign(Object.create(null), { a: '1' }) as Record<string, string> }],
    })
    await store.applyUpload(p, one('first'))
    // Every fsync of a file the store opens waits for `release`; the paths synced are recorded.
    const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof FsPromises
    const open = fsp.open
    const synced: string[] = []
    let release = (): void => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    fsp.open = (async (path: string, flags?: string) => {
      const handle = await open(path, flags)
      const sync = handle.sync.bind(handle)
      handle.sync = async () => {
        await gate
        await sync()
        synced.push(String(path))
      }
      return handle
    }) as typeof fsp.open
    syncBuiltinESMExports()
    const calls: string[] = []
    const pragma = store.database.pragma.bind(store.database)
    store.database.pragma = ((source: string, options?: Database.PragmaOptions) => {
      if (source.startsWith('synchronous =')) calls.push(source)
      return pragma(source, options)
    }) as typeof store.database.pragma
    const other = new BetterSqlite3(file, { readonly: true })
    try {
      let acknowledged = false
      const upload = store.applyUpload(p, one('second')).then(() => (acknowledged = true))
      const seen = () => other.prepare("SELECT count(*) FROM profiles WHERE user_id = 'second'").pluck().get()
      for (let i = 0; i < 200 && seen() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
      assert.equal(seen(), 1, 'committed (another connection sees it)')
      assert.deepEqual(calls, ['synchronous = NORMAL', 'synchronous = FULL'], 'committed without SQLite fsync')
      assert.equal(acknowledged, false, 'not acknowledged before the WAL is synced')
      release()
      await upload
      assert.deepEqual(synced, [`${file}-wal`])
    } finally {
      release()
      fsp.open = open
      syncBuiltinESMExports()
      store.database.pragma = pragma
      other.close()
    }
    assert.equal(store.database.pragma('synchronous', { simple: true }), 2, 'FULL again after')
    await store.close()
  })

  /**
   * Queues `batches` in one turn and returns how many requests each turn's group commit settled
   * (a probe queued after the first flush runs after each flush: flushes reschedule themselves).
   */
  const commitSizes = async (store: SqliteStore, projectId: number, batches: UploadBatch[]) => {
    let settled = 0
    const outcomes = batches.map((b) => {
      const done = store.applyUpload(projectId, b)
      void done.then(
        () => settled++,
        () => settled++,
      )
      return done
    })
    const sizes: number[] = []
    let seen = 0
    await new Promise<void>((resolve) => {
      const probe = () => {
        sizes.push(settled - seen)
        seen = settled
        if (settled === batches.length) resolve()
        else setImmediate(probe)
      }
      setImmediate(probe)
    })
    return { sizes, outcomes: await Promise.allSettled(outcomes) }
  }
  const usersBatch = (prefix: string, n: number): UploadBatch => ({
    rows: n,
    patches: Array.from({ length: n }, (_, i) => ({
      userId: `${prefix}-${i}`,
      attributes: Object.assign(Object.create(null), { i: String(i) }) as Record<string, string>,
    })),
  })

  test('a group commit takes at most commitMaxUsers users (one larger request still whole); the rest commit on later turns', async () => {
    const store = new SqliteStore(':memory:', { commitMaxUsers: 250 })
    await store.migrate()
    const p = (await store.ensureProject('cap')).id
    const batches = Array.from({ length: 10 }, (_, i) => usersBatch(`b${i}`, 100))
    batches.splice(4, 0, usersBatch('big', 300))
    await failWritesOf(store, 'b7-50')
    const { sizes, outcomes } = await commitSizes(store, p, batches)
    // 100+100 | 100+100 (a third would pass 250) | the 300 alone | then pairs of 100
    assert.deepEqual(sizes, [2, 2, 1, 2, 2, 2])
    // Atomic per request: the failing one rejects alone and leaves none of its users behind.
    assert.deepEqual(
      outcomes.map((r, i) => (r.status === 'rejected' ? i : -1)).filter((i) => i >= 0),
      [8],
    )
    assert.equal(await store.countProfiles(p), 10 * 100 + 300 - 100)
    assert.equal(await store.getProfile(p, 'b7-0'), undefined)
    await store.close()
  })

  test('commitBudgetMs: 0 commits one request per turn, in order, and close writes what is still queued', async () => {
    const store = new SqliteStore(':memory:', { commitBudgetMs: 0 })
    await store.migrate()
    const p = (await store.ensureProject('budget')).id
    const { sizes } = await commitSizes(
      store,
      p,
      Array.from({ length: 5 }, (_, i) => usersBatch(`c${i}`, 3)),
    )
    assert.deepEqual(sizes, [1, 1, 1, 1, 1])
    const late = [store.applyUpload(p, usersBatch('late1', 2)), store.applyUpload(p, usersBatch('late2', 2))]
    await store.close()
    assert.deepEqual(
      (await Promise.all(late)).map((o) => o.created),
      [2, 2],
    )
  })

  test('an upload queued before close is written by close', async () => {
    const url = `sqlite:${join(dir, 'close.db')}`
    const store: Store = await openStore(url)
    const p = (await store.ensureProject('c')).id
    const pending = store.applyUpload(p, {
      rows: 1,
      patches: [{ userId: 'late', attributes: Object.assign(Object.create(null), { a: '1' }) }],
    })
    await store.close()
    await pending
    const again = await openStore(url)
    assert.ok(await again.getProfile(p, 'late'))
    await again.close()
  })

  test('old change-log entries are pruned automatically, so a stale token resets', async () => {
    const store = await openStore('sqlite::memory:', { changeRetentionMs: 1, pruneIntervalMs: 20 })
    const p = (await store.ensureProject('prune')).id
    const one = { rows: 1, patches: [{ userId: 'u', attributes: Object.assign(Object.create(null), { a: '1' }) }] }
    await store.applyUpload(p, one)
    const first = store.readChanges(p, null)
    for await (const _ of first.pages);
    await store.applyUpload(p, one)
    await new Promise((resolve) => setTimeout(resolve, 150))
    const again = store.readChanges(p, first.token())
    const pages = []
    for await (const page of again.pages) pages.push(page)
    assert.equal(pages[0]?.reset, true)
    await store.close()
  })
})

describe('sqlite reader thread', () => {
  const attrs = (a: Record<string, string>) => Object.assign(Object.create(null), a) as Record<string, string>
  const fill = async (store: SqliteStore, projectId: number, users: number) => {
    for (let start = 0; start < users; start += 1000) {
      const patches = []
      for (let i = start; i < Math.min(users, start + 1000); i++) {
        patches.push({ userId: `u${String(i).padStart(6, '0')}`, attributes: attrs({ n: String(i % 10) }) })
      }
      await store.applyUpload(projectId, { rows: patches.length, patches })
    }
  }
  /** Event-loop turns taken while `read` is pending: 0 when it ran synchronously on this thread. */
  const turnsDuring = async (read: () => Promise<unknown>): Promise<number> => {
    let turns = 0
    let done = false
    const spin = () => {
      if (done) return
      turns++
      setImmediate(spin)
    }
    setImmediate(spin)
    // Started after the spinner is queued but before it runs: a synchronous read finishes first.
    await read()
    done = true
    return turns
  }
  const where = { kind: 'text', field: 'n', op: 'eq', value: '3' } as const

  for (const reads of ['worker', 'inline'] as const) {
    test(`filtered counts and scans run ${reads === 'worker' ? 'off' : 'on'} the event loop with reads: ${reads}`, async () => {
      const store = new SqliteStore(join(dir, `reads-${reads}.db`), { reads })
      await store.migrate()
      const p = (await store.ensureProject('r')).id
      await fill(store, p, 5000)
      const turns = await turnsDuring(() => store.countProfiles(p, where))
      if (reads === 'worker') assert.ok(turns > 0, 'the event loop turned while the reader counted')
      else assert.equal(turns, 0)
      assert.equal(await store.countProfiles(p, where), 500)
      assert.equal((await store.scanProfiles(p, { where, limit: 3, afterUserId: 'u000100' }))[0]?.userId, 'u000103')
      await store.close()
    })
  }

  test('the reader has the SQL functions of the store: numeric and date conditions answer as on the main connection', async () => {
    for (const reads of ['worker', 'inline'] as const) {
      const store = new SqliteStore(join(dir, `reader-functions-${reads}.db`), { reads })
      await store.migrate()
      const p = (await store.ensureProject('f')).id
      const users = [
        ['a', '5', '2025-01-15'],
        ['b', '50', '2025-06-01T10:00:00+09:00'],
        ['c', 'x', 'not a date'],
      ] as const
      await store.applyUpload(p, {
        rows: users.length,
        patches: users.map(([userId, n, d]) => ({ userId, attributes: attrs({ n, d }) })),
      })
      const parsed = parseCondition({ field: 'd', op: 'before', value: '2025-03-01' })
      assert.ok(parsed.ok)
      const before = resolveDates(parsed.value, { now: Date.parse('2026-01-01T00:00:00Z'), timeZone: 'UTC' })
      assert.equal(await store.countProfiles(p, before), 1, `date condition with reads: ${reads}`)
      assert.equal(await store.countProfiles(p, { kind: 'numeric', field: 'n', op: 'gt', value: 10 }), 1)
      // The answers above would also come from the fallback to the main connection: the thread must be up.
      const reader = (store as unknown as { reader?: { available: boolean } }).reader
      assert.equal(reader?.available ?? false, reads === 'worker', 'the reader thread answered and is still up')
      await store.close()
    }
  })

  /** Every page of a read of the feed, and its token. */
  const readFeed = async (store: SqliteStore, projectId: number, token: string | null) => {
    const feed = store.readChanges(projectId, token)
    const pages: ChangePage[] = []
    for await (const page of feed.pages) pages.push(page)
    return { pages, token: feed.token() }
  }
  /**
   * Reads the feed inside an open, uncommitted write transaction of the store's own connection that
   * gives every profile `probe: 'uncommitted'`: pages read on that connection show it, pages read by
   * another connection (the feed thread) cannot.
   */
  const readFeedBesideWrite = async (store: SqliteStore, projectId: number, token: string | null) => {
    store.database.exec('BEGIN')
    try {
      store.database
        .prepare(
          `UPDATE profiles SET attributes = jsonb_set(attributes, '$.probe', 'uncommitted') WHERE project_id = ?`,
        )
        .run(projectId)
      return await readFeed(store, projectId, token)
    } finally {
      store.database.exec('ROLLBACK')
    }
  }
  const probed = (pages: ChangePage[]) => pages.some((page) => page.upserts.some((u) => 'probe' in u.attributes))

  test('the change feed is read on a thread of its own with reads: worker, on the event loop with inline, alike', async () => {
    const seen: Record<string, unknown> = {}
    for (const reads of ['worker', 'inline'] as const) {
      const store = new SqliteStore(join(dir, `feed-${reads}.db`), { reads })
      await store.migrate()
      const p = (await store.ensureProject('feed')).id
      await fill(store, p, 2500)
      const full = await readFeedBesideWrite(store, p, null)
      assert.equal(full.pages.length, 3)
      assert.equal(full.pages[0]?.reset, true)
      // 1,500 changes of 1,200 users (some twice), and one deletion.
      for (let start = 0; start < 1500; start += 100) {
        const patches = []
        for (let i = start; i < start + 100; i++) {
          patches.push({ userId: `u${String(i % 1200).padStart(6, '0')}`, attributes: attrs({ m: String(i) }) })
        }
        await store.applyUpload(p, { rows: patches.length, patches })
      }
      await store.deleteProfile(p, 'u000007')
      const next = await readFeedBesideWrite(store, p, full.token)
      for (const read of [full, next])
        assert.equal(probed(read.pages), reads === 'inline', 'which connection read the pages')
      assert.ok(next.pages.every((page) => page.reset === false))
      const upserts = new Map(
        next.pages.flatMap((page) =>
          page.upserts.map((u) => [
            u.userId,
            Object.fromEntries(Object.entries(u.attributes).filter(([k]) => k !== 'probe')),
          ]),
        ),
      )
      assert.equal(upserts.size, 1199)
      assert.deepEqual(upserts.get('u000042'), { n: '2', m: '1242' })
      // Each page that holds a change of u000007 tells its current state: deleted.
      assert.deepEqual(new Set(next.pages.flatMap((page) => page.deletedUserIds)), new Set(['u000007']))
      const quiet = await readFeed(store, p, next.token)
      assert.equal(quiet.pages.length, 0)
      seen[reads] = { upserts: [...upserts].sort(), quiet: quiet.token === next.token }
      // The pages above would also come from the fallback to the main connection: the thread must be up.
      const thread = (store as unknown as { feedThread?: { available: boolean } }).feedThread
      assert.equal(thread?.available ?? false, reads === 'worker', 'the feed thread answered and is still up')
      await store.close()
    }
    assert.deepEqual(seen['worker'], seen['inline'])
  })

  test('a page of the feed whose entries were pruned after the read began fails, on the thread as inline; the next page is read ahead', async () => {
    for (const reads of ['worker', 'inline'] as const) {
      for (const later of [false, true]) {
        const store = new SqliteStore(join(dir, `feed-pruned-${reads}-${later}.db`), { reads, changeRetentionMs: 0 })
        await store.migrate()
        const p = (await store.ensureProject('pruned')).id
        const t0 = (await readFeed(store, p, null)).token
        await fill(store, p, 2500)
        await new Promise((resolve) => setTimeout(resolve, 5))
        const cutoff = new Date()
        await new Promise((resolve) => setTimeout(resolve, 5))
        // Entries after the cutoff survive pruning: the next page then has rows, and still fails.
        if (later) await fill(store, p, 10)
        const feed = store.readChanges(p, t0)
        const iterator = feed.pages[Symbol.asyncIterator]()
        assert.equal((await iterator.next()).value?.upserts.length, 1000)
        // The next page is read ahead while the caller holds this one: inline, within this turn.
        await new Promise((resolve) => setImmediate(resolve))
        assert.equal(await store.pruneChanges(cutoff), 2500)
        if (reads === 'inline')
          assert.equal((await iterator.next()).value?.upserts.length, 1000, 'read before the pruning')
        // On the thread the page read ahead may or may not have been read before the pruning; a page read after it fails.
        const rest = async () => {
          while ((await iterator.next()).done !== true);
        }
        await assert.rejects(rest(), /pruned during the read/, `reads: ${reads}, later entries: ${later}`)
        await store.close()
      }
    }
  })

  test('the reader sees every acknowledged upload and deletion at once', async () => {
    const store = new SqliteStore(join(dir, 'reader-exact.db'))
    await store.migrate()
    const p = (await store.ensureProject('x')).id
    for (let i = 0; i < 30; i++) {
      await store.applyUpload(p, { rows: 1, patches: [{ userId: `v${i}`, attributes: attrs({ n: '3' }) }] })
      assert.equal(await store.countProfiles(p, where), i + 1)
      assert.equal(await store.countProfiles(p), i + 1)
    }
    await store.deleteProfile(p, 'v0')
    assert.equal(await store.countProfiles(p, where), 29)
    await store.close()
  })
})

describe('sqlite attribute indexes: the planner uses them (a scan would fail these)', () => {
  test('count and first page of eq, in, range, not_exists and all-of use the index; an attribute without one scans', async () => {
    const store = (await openStore(`sqlite:${join(dir, 'plans.db')}`)) as SqliteStore
    const p = (await store.ensureProject('plans')).id
    const rows = await loadShapeProfiles(store, p, 5000)
    const plan = ({ sql, params }: { sql: string; params: unknown[] }): string =>
      (store.database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
        .map((r) => r.detail)
        .join('; ')
    // With INDEXED BY the plan is a SEARCH on the index's expression only when the compiled
    // expression is exactly the index's (else a full SCAN of the index). Which index the planner then prefers depends
    // on the statistics ANALYZE took at build time; at 1M users it picks them (bench:segments).
    const names = new Map((await store.listAttributeIndexes(p)).map((i) => [i.name, i.indexName]))
    const forced = (q: { sql: string; params: unknown[] }, index: string) => ({
      sql: q.sql.replace('FROM profiles', `FROM profiles INDEXED BY ${index}`),
      params: q.params,
    })
    const fields: Record<string, string> = { eq: 'plan', in: 'language', range: 'ltv', not_exists: 'city' }
    fields['all of 2 eq'] = 'language'
    for (const shape of INDEXED_SHAPES) {
      const index = names.get(fields[shape.name] as string) as string
      assert.match(
        plan(forced(sqliteCountSql(p, shape.where), index)),
        /^SEARCH profiles USING (COVERING )?INDEX tb_attr_\w+ \(<expr>/,
        shape.name,
      )
    }
    assert.doesNotMatch(plan(forced(sqliteCountSql(p, UNINDEXED_SHAPE), names.get('plan') as string)), /^SEARCH/)
    // The first page of an eq comes from the index in user_id order (no sort), when it is used.
    const eq = INDEXED_SHAPES[0]?.where as Condition
    assert.match(
      plan(forced(sqliteScanSql(p, { where: eq, limit: 101 }), names.get('plan') as string)),
      /^SEARCH profiles USING INDEX tb_attr_\w+ \(<expr>=\?\)$/,
    )
    assert.doesNotMatch(plan(sqliteCountSql(p, UNINDEXED_SHAPE)), /tb_attr_/)
    // The reader thread (its own connection) answers through the index too, exactly.
    const where = INDEXED_SHAPES[2]?.where as Condition
    const expected = rows.filter(([id, a]) => evaluateCondition(where, id, a)).length
    assert.equal(await store.countProfiles(p, where), expected)
    await store.close()
  })
})

describe('sqlite profiles as a rowid table: counts come from attribute indexes alone', () => {
  test('0004_profiles_rowid keeps every profile and its bytes, in key order, and rebuilds the attribute indexes', async () => {
    const filename = join(dir, 'before-rowid.db')
    const old = new BetterSqlite3(filename)
    old.exec('CREATE TABLE traitbase_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)')
    for (const m of SQLITE_MIGRATIONS.filter((m) => m.id !== '0004_profiles_rowid')) {
      old.exec(m.sql)
      old.prepare('INSERT INTO traitbase_migrations VALUES (?, 0)').run(m.id)
    }
    assert.match(
      old.prepare("SELECT sql FROM sqlite_master WHERE name = 'profiles'").pluck().get() as string,
      /WITHOUT ROWID/,
    )
    old.prepare("INSERT INTO projects (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)").run()
    const insert = old.prepare('INSERT INTO profiles VALUES (?, ?, jsonb(?), 5, 6)')
    for (const [p, u, a] of [
      [2, 'z', '{"plan":"x"}'],
      [1, 'm', '{"plan":"pro"}'],
      [1, 'b', '{"plan":"free","n":"1"}'],
    ] as const)
      insert.run(p, u, a)
    const indexName = attributeIndexName(1, 'plan', 'text')
    old.exec(createAttributeIndexSql(sqliteDialect, 1, 'plan', 'text'))
    old.prepare("INSERT INTO attribute_indexes VALUES (1, 'plan', 'text', ?, 0)").run(indexName)
    const before = old
      .prepare('SELECT project_id, user_id, hex(attributes) AS a, created_at, updated_at FROM profiles ORDER BY 1, 2')
      .all()
    old.close()

    const store = new SqliteStore(filename)
    await store.migrate()
    const db = store.database
    assert.doesNotMatch(
      db.prepare("SELECT sql FROM sqlite_master WHERE name = 'profiles'").pluck().get() as string,
      /WITHOUT ROWID/,
    )
    const after = db
      .prepare('SELECT project_id, user_id, hex(attributes) AS a, created_at, updated_at FROM profiles ORDER BY 1, 2')
      .all()
    assert.deepEqual(after, before)
    assert.deepEqual(
      db.prepare('SELECT user_id FROM profiles ORDER BY rowid').pluck().all(),
      ['b', 'm', 'z'],
      'copied in key order',
    )
    assert.equal(
      db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?").pluck().get(indexName),
      1,
    )
    assert.equal(await store.countProfiles(1, { kind: 'text', field: 'plan', op: 'eq', value: 'pro' }), 1)
    // The key is still unique: an upload of an existing user updates it.
    await store.applyUpload(1, {
      rows: 1,
      patches: [{ userId: 'm', attributes: Object.assign(Object.create(null), { plan: 'free' }) }],
    })
    assert.equal(await store.countProfiles(1), 2)
    assert.equal(await store.countProfiles(1, { kind: 'text', field: 'plan', op: 'eq', value: 'free' }), 2)
    await store.close()
  })

  test('eq, in, range, not_exists and all-of-eq count without reading a table row; answers are exact', async () => {
    const store = (await openStore(`sqlite:${join(dir, 'rowid-counts.db')}`)) as SqliteStore
    const p = (await store.ensureProject('counts')).id
    const rows = await loadShapeProfiles(store, p, 4000)
    const indexes = await store.listAttributeIndexes(p)
    const text = new Map(indexes.filter((i) => i.kind === 'text').map((i) => [i.name, i.indexName]))
    const db = store.database
    const root = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'profiles'").pluck().get() as number
    // Opcodes that read a row of `profiles` itself (DeferredSeek only arms a seek for a later column read).
    const tableReads = ({ sql, params }: { sql: string; params: unknown[] }): string[] => {
      const ops = db.prepare(`EXPLAIN ${sql}`).all(...params) as { opcode: string; p1: number; p2: number }[]
      const cursors = new Set(ops.filter((o) => o.opcode === 'OpenRead' && o.p2 === root).map((o) => o.p1))
      return ops
        .filter(
          (o) => cursors.has(o.p1) && ['Column', 'NotFound', 'NotExists', 'SeekRowid', 'Rewind'].includes(o.opcode),
        )
        .map((o) => o.opcode)
    }
    const plan = ({ sql, params }: { sql: string; params: unknown[] }): string =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join('; ')
    const names = new Map(indexes.map((i) => [i.name, i.indexName]))
    const number = new Map(indexes.filter((i) => i.kind === 'number').map((i) => [i.name, i.indexName]))
    const input = { text, number, fullScan: false }
    const fields: Record<string, string> = { eq: 'plan', in: 'language', range: 'ltv', not_exists: 'city' }
    for (const shape of INDEXED_SHAPES) {
      const q = sqliteCountSql(p, shape.where, input)
      assert.deepEqual(tableReads(q), [], `${shape.name}: ${plan(q)}`)
      const field = fields[shape.name]
      if (field !== undefined)
        assert.match(plan(q), new RegExp(`^SEARCH profiles USING INDEX ${names.get(field) as string} \\(<expr>`))
    }
    // all of 2 eq: one alias per indexed leaf; one walks its index, the other probes (value, user_id).
    const both = INDEXED_SHAPES.find((s) => s.name === 'all of 2 eq')?.where as Condition
    assert.match(
      plan(sqliteCountSql(p, both, input)),
      /SEARCH p\d USING INDEX tb_attr_\w+ \(<expr>=\?\); SEARCH p\d USING INDEX tb_attr_\w+ \(<expr>=\? AND user_id=\?\)/,
    )
    // An indexed leaf of an `all` walks its index even with an unindexed leaf beside it.
    const withEmail: Condition = { kind: 'all', of: [UNINDEXED_SHAPE, INDEXED_SHAPES[3]?.where as Condition] }
    assert.match(plan(sqliteCountSql(p, withEmail, input)), new RegExp(`USING INDEX ${names.get('city') as string}`))
    // Nothing indexed: a project with a large share of the table scans it in rowid order, a small one walks its key.
    assert.equal(plan(sqliteCountSql(p, UNINDEXED_SHAPE, { ...input, fullScan: true })), 'SCAN profiles')
    assert.doesNotMatch(sqliteCountSql(p, UNINDEXED_SHAPE, input).sql, /INDEXED/, 'a small project: the planner picks')
    // `exists` matches nearly everyone: it never walks an index.
    assert.doesNotMatch(plan(sqliteCountSql(p, { kind: 'presence', field: 'city', op: 'exists' }, input)), /tb_attr_/)
    // Answers equal the reference evaluation, with and without the join, also with an unindexed leaf
    // and an `in` among the probes.
    const mixed: Condition = {
      kind: 'all',
      of: [
        { kind: 'set', field: 'plan', op: 'in', values: ['pro', 'free', 'p4'] },
        { kind: 'text', field: 'email', op: 'contains', value: '1' },
        { kind: 'set', field: 'language', op: 'in', values: ['ja', 'l4', 'l14'] },
        { kind: 'presence', field: 'city', op: 'exists' },
      ],
    }
    for (const where of [...INDEXED_SHAPES.map((s) => s.where), mixed, withEmail]) {
      const expected = rows.filter(([id, a]) => evaluateCondition(where, id, a)).length
      assert.equal(await store.countProfiles(p, where), expected, JSON.stringify(where))
      assert.equal(
        db
          .prepare(sqliteCountSql(p, where).sql)
          .pluck()
          .get(...sqliteCountSql(p, where).params),
        expected,
      )
      const full = sqliteCountSql(p, where, { text: new Map(), number: new Map(), fullScan: true })
      assert.equal(
        db
          .prepare(full.sql)
          .pluck()
          .get(...full.params),
        expected,
        'the same by a full scan',
      )
    }
    assert.ok(rows.filter(([id, a]) => evaluateCondition(mixed, id, a)).length > 0, 'the mixed shape matches someone')
    assert.match(sqliteCountSql(p, mixed, input).sql, /profiles p1 INDEXED BY/)
    // An index dropped behind the store's back (another process, after the registry was read)
    // costs the join, not the answer.
    db.exec(`DROP INDEX ${names.get('language') as string}`)
    assert.equal(await store.countProfiles(p, both), rows.filter(([id, a]) => evaluateCondition(both, id, a)).length)
    await store.close()
  })

  test('a count scans the whole table only for a project with a large share of it', async () => {
    const store = new SqliteStore(join(dir, 'share.db'))
    await store.migrate()
    const small = (await store.ensureProject('small')).id
    const big = (await store.ensureProject('big')).id
    const upload = (project: number, n: number) =>
      store.applyUpload(project, {
        rows: n,
        patches: Array.from({ length: n }, (_, i) => ({
          userId: `u${i}`,
          attributes: Object.assign(Object.create(null), { a: String(i % 3) }) as Record<string, string>,
        })),
      })
    await upload(small, 10)
    await upload(big, 90)
    const seen: string[] = []
    const spy = store as unknown as { read: (sql: string, params: unknown[], mode: string) => Promise<unknown> }
    const read = spy.read.bind(store)
    spy.read = (sql, params, mode) => {
      seen.push(sql)
      return read(sql, params, mode)
    }
    const where: Condition = { kind: 'text', field: 'a', op: 'eq', value: '1' }
    assert.equal(await store.countProfiles(small, where), 3)
    assert.equal(await store.countProfiles(big, where), 30)
    assert.doesNotMatch(seen[0] as string, /NOT INDEXED/, '10 % of the table: through its key')
    assert.match(seen[1] as string, /FROM profiles NOT INDEXED/, '90 %: a scan in rowid order')
    await store.close()
  })
})
