import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { compareCodePoints } from '../../core/text.js'
import type { AttributePatch, UploadBatch } from '../../core/upload.js'
import { SegmentIndex } from '../../segments/segment-index.js'
import { openStore } from '../open-store.js'
import { ProjectNotIndexedError } from '../store.js'
import { postgresCountSql, type PostgresStore } from './postgres-store.js'
import { bucketOf } from './spread.js'
import { createTestDatabase } from './test-database.js'

// Projects spread over both workers of the three-node cluster (`projects spread`, docs/scaling.md):
// where the rows sit, and the store contract for such a project. CI sets TRAITBASE_REQUIRE_CITUS=1
// (and TRAITBASE_REQUIRE_PG=1 for the plain PostgreSQL refusal).
const db = await createTestDatabase('citus')

function batch(...patches: [string, Record<string, string | null>][]): UploadBatch {
  const list = patches.map(([userId, a]) => ({
    userId,
    attributes: Object.assign(Object.create(null) as AttributePatch, a),
  }))
  list.sort((x, y) => compareCodePoints(x.userId, y.userId))
  return { rows: list.length, patches: list }
}

const plain = (p: { attributes: Record<string, string> } | undefined) =>
  p === undefined ? undefined : { ...p.attributes }

test('bucketOf is stable FNV-1a of the UTF-16 code units (part of the stored layout)', () => {
  assert.equal(bucketOf('', 7), 0x811c9dc5 % 7)
  // FNV-1a("a") = 0xe40c292c
  assert.equal(bucketOf('a', 1 << 30), 0xe40c292c % (1 << 30))
  const seen = new Set<number>()
  for (let i = 0; i < 1000; i++) seen.add(bucketOf(`user-${i}`, 8))
  assert.equal(seen.size, 8, 'every bucket gets users')
})

describe('spreading on plain PostgreSQL', () => {
  test('is refused with a 4xx that changes nothing', async (t) => {
    const pgDb = await createTestDatabase('postgres')
    if ('skip' in pgDb) return t.skip(pgDb.skip)
    const store = (await openStore(pgDb.url)) as PostgresStore
    try {
      const p = (await store.ensureProject('plain')).id
      await assert.rejects(store.spreadProject(p, 4), (e: unknown) => e instanceof TraitbaseError && e.status === 400)
      await store.applyUpload(p, batch(['u', { a: '1' }]))
      assert.deepEqual(plain(await store.getProfile(p, 'u')), { a: '1' })
    } finally {
      await store.close()
      await pgDb.drop()
    }
  })
})

if ('skip' in db) {
  test('spread projects on Citus', (t) => t.skip(db.skip))
} else {
  after(() => db.drop())

  describe('a project spread over both workers', () => {
    let store: PostgresStore
    const stores: PostgresStore[] = []
    const open = async () => {
      const s = (await openStore(db.url)) as PostgresStore
      stores.push(s)
      return s
    }
    after(async () => {
      for (const s of stores) await s.close()
    })

    async function spreadNew(name: string, buckets = 4): Promise<number> {
      store ??= await open()
      const p = (await store.ensureProject(name)).id
      const result = await store.spreadProject(p, buckets)
      assert.equal(result.keys.length, buckets)
      return p
    }

    test('layout: spread_profiles is distributed by dist_key in a co-location group of its own', async () => {
      store ??= await open()
      const { rows } = await store.pool.query<{ name: string; column: string; colocation: number }>(
        `SELECT logicalrelid::regclass::text AS name, column_to_column_name(logicalrelid, partkey) AS column,
                colocationid AS colocation
         FROM pg_dist_partition WHERE logicalrelid IN ('spread_profiles'::regclass, 'profiles'::regclass)`,
      )
      const byName = new Map(rows.map((r) => [r.name, r]))
      assert.equal(byName.get('spread_profiles')?.column, 'dist_key')
      assert.equal(byName.get('profiles')?.column, 'project_id')
      assert.notEqual(byName.get('spread_profiles')?.colocation, byName.get('profiles')?.colocation)
    })

    test("the buckets' rows sit on both workers", async () => {
      const p = await spreadNew('on-both', 8)
      const rows: [string, Record<string, string>][] = []
      for (let i = 0; i < 2000; i++) rows.push([`u${i}`, { i: String(i) }])
      await store.applyUpload(p, batch(...rows))
      const { rows: perNode } = await store.pool.query<{ port: number; n: number }>(
        `SELECT n.nodeport AS port, sum(c.n)::int AS n
         FROM (SELECT dist_key, count(*) AS n FROM spread_profiles WHERE project_id = $1 GROUP BY dist_key) c
         JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('spread_profiles', c.dist_key)
         JOIN pg_dist_node n ON n.groupid = pl.groupid
         GROUP BY n.nodeport ORDER BY n.nodeport`,
        [p],
      )
      assert.deepEqual(
        perNode.map((r) => r.port),
        [5434, 5435].filter((port) => perNode.some((r) => r.port === port)),
      )
      assert.equal(perNode.length, 2, `rows on ${JSON.stringify(perNode)}`)
      assert.equal(
        perNode.reduce((sum, r) => sum + r.n, 0),
        2000,
      )
      for (const r of perNode) assert.ok(r.n > 500, `${r.n} rows on :${r.port}`)
      const { rows: none } = await store.pool.query('SELECT 1 FROM profiles WHERE project_id = $1', [p])
      assert.deepEqual(none, [])
    })

    test('update policy, null clears, created_at kept; reads, scans, counts, deletes, user counts', async () => {
      const p = await spreadNew('contract')
      const first = await store.applyUpload(p, batch(['a', { x: '1', y: '2' }], ['b', { x: '3' }], ['c', { z: '4' }]))
      assert.deepEqual(first, { created: 3, updated: 0, valuesWritten: 4 })
      const before = await store.getProfile(p, 'a')
      await new Promise((resolve) => setTimeout(resolve, 5))
      const second = await store.applyUpload(p, batch(['a', { x: '9', y: null, w: '5' }], ['d', { x: '1', q: null }]))
      assert.deepEqual(second, { created: 1, updated: 1, valuesWritten: 3 })
      const a = await store.getProfile(p, 'a')
      assert.deepEqual(plain(a), { x: '9', w: '5' })
      assert.equal(a?.createdAt, before?.createdAt)
      assert.ok((a?.updatedAt ?? '') > (before?.updatedAt ?? ''))
      assert.deepEqual(plain(await store.getProfile(p, 'd')), { x: '1' })
      assert.equal(await store.getProfile(p, 'nobody'), undefined)

      // Scans in code point order with keyset pages, across every bucket; exact counts.
      const page1 = await store.scanProfiles(p, { limit: 2 })
      const page2 = await store.scanProfiles(p, { limit: 2, afterUserId: page1[1]?.userId as string })
      assert.deepEqual(
        [...page1, ...page2].map((x) => x.userId),
        ['a', 'b', 'c', 'd'],
      )
      assert.equal(await store.countProfiles(p), 4)
      const x1 = { kind: 'text', field: 'x', op: 'eq', value: '1' } as const
      assert.equal(await store.countProfiles(p, x1), 1)
      assert.deepEqual(
        (await store.scanProfiles(p, { limit: 10, where: x1 })).map((r) => r.userId),
        ['d'],
      )
      assert.deepEqual(
        (await store.listUsers(p, { limit: 10, prefix: 'c' })).map((u) => u.userId),
        ['c'],
      )

      assert.equal(await store.deleteProfile(p, 'b'), true)
      assert.equal(await store.deleteProfile(p, 'b'), false)
      assert.equal(await store.getProfile(p, 'b'), undefined)
      assert.equal(await store.countProfiles(p), 3)
      const listed = (await store.listProjects()).find((x) => x.id === p)
      assert.equal(listed?.users, 3)
      // Another project with the same user ids is untouched.
      const other = (await store.ensureProject('contract-neighbour')).id
      await store.applyUpload(other, batch(['a', { x: 'other' }]))
      assert.deepEqual(plain(await store.getProfile(p, 'a')), { x: '9', w: '5' })
      assert.deepEqual(plain(await store.getProfile(other, 'a')), { x: 'other' })
    })

    test('an upload is applied whole or not at all, across workers', async () => {
      const p = await spreadNew('atomic', 8)
      const users: [string, Record<string, string>][] = []
      for (let i = 0; i < 200; i++) users.push([`ok${i}`, { v: 'old' }])
      await store.applyUpload(p, batch(...users))
      await store.pool.query(
        `ALTER TABLE spread_profiles ADD CONSTRAINT test_fail_spread CHECK (user_id <> 'boom') NOT VALID`,
      )
      try {
        const next: [string, Record<string, string>][] = users.map(([id]) => [id, { v: 'new' }])
        next.push(['boom', { v: '1' }], ['zz-new', { v: '1' }])
        await assert.rejects(store.applyUpload(p, batch(...next)))
      } finally {
        await store.pool.query('ALTER TABLE spread_profiles DROP CONSTRAINT test_fail_spread')
      }
      assert.equal(await store.countProfiles(p), 200)
      assert.equal(await store.countProfiles(p, { kind: 'text', field: 'v', op: 'eq', value: 'new' } as const), 0)
      assert.equal(await store.getProfile(p, 'zz-new'), undefined)
    })

    test('concurrent overlapping uploads in opposite orders lose no attribute', async () => {
      const p = await spreadNew('overlap', 8)
      const ids = Array.from({ length: 300 }, (_, i) => `o${i}`)
      const make = (attr: string) => batch(...ids.map((id): [string, Record<string, string>] => [id, { [attr]: '1' }]))
      await Promise.all([0, 1, 2, 3, 4, 5].map((i) => store.applyUpload(p, make(`a${i}`))))
      const all = await store.scanProfiles(p, { limit: 1000 })
      assert.equal(all.length, 300)
      for (const profile of all) assert.equal(Object.keys(profile.attributes).length, 6, profile.userId)
    })

    test('no change feed: readChanges refuses, and the segment index answers from the database', async () => {
      const p = await spreadNew('no-feed')
      await store.applyUpload(p, batch(['a', { x: '1' }]))
      const feed = store.readChanges(p, null)
      await assert.rejects(async () => {
        for await (const page of feed.pages) void page
      }, ProjectNotIndexedError)
      const logs: string[] = []
      const index = new SegmentIndex(store, { followIntervalMs: 0, log: (m) => logs.push(m) })
      const where = { kind: 'text', field: 'x', op: 'eq', value: '1' } as const
      for (let i = 0; i < 3; i++) {
        const answer = await index.query(p, where, 10)
        assert.deepEqual(answer, { count: i + 1, userIds: answer.userIds, nextAfter: null, source: 'database' })
        await store.applyUpload(p, batch([`n${i}`, { x: '1' }]))
      }
      assert.equal(await index.count(p, where), 4)
      await assert.rejects(index.catalog(p), (e: unknown) => e instanceof TraitbaseError && e.status === 409)
      assert.deepEqual(logs, [], 'skipped cleanly: no load failure logged')
      assert.equal(index.stats().loadFailures, 0)
      index.close()
    })

    test('attribute indexes: built on spread_profiles, used by the count, exact; an indexed project is not spread', async () => {
      const p = await spreadNew('indexed', 4)
      const ids = Array.from({ length: 400 }, (_, i) => `i${i}`)
      await store.applyUpload(
        p,
        batch(...ids.map((id, i): [string, Record<string, string>] => [id, { plan: i % 4 === 0 ? 'pro' : 'free' }])),
      )
      const where = { kind: 'text', field: 'plan', op: 'eq', value: 'pro' } as const
      assert.equal(await store.countProfiles(p, where), 100)
      const { index, created } = await store.createAttributeIndex(p, 'plan', 'text')
      assert.equal(created, true)
      const { rows } = await store.pool.query<{ table: string }>(
        `SELECT tablename AS table FROM pg_indexes WHERE indexname = $1`,
        [index.indexName],
      )
      assert.deepEqual(
        rows.map((r) => r.table),
        ['spread_profiles'],
      )
      assert.equal(await store.countProfiles(p, where), 100)
      const { sql, params } = postgresCountSql(
        {
          from: `spread_profiles WHERE project_id = ${p} AND dist_key = ANY($1::bigint[])`,
          params: [(await store.pool.query('SELECT spread_keys FROM projects WHERE id = $1', [p])).rows[0].spread_keys],
        },
        where,
      )
      const client = await store.pool.connect()
      try {
        // On a few rows the planner would rather scan: off for this transaction, on the workers too.
        await client.query(`SET citus.propagate_set_commands TO 'local'`)
        await client.query('BEGIN')
        await client.query('SET LOCAL enable_seqscan = off')
        const plan = (await client.query(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n')
        await client.query('COMMIT')
        assert.match(plan, new RegExp(index.indexName), plan)
      } finally {
        await client.query('ROLLBACK').catch(() => undefined)
        await client.query('RESET citus.propagate_set_commands')
        client.release()
      }
      const other = (await store.ensureProject('indexed-then-spread')).id
      await store.createAttributeIndex(other, 'plan', 'text')
      await assert.rejects(
        store.spreadProject(other, 4),
        (e: unknown) => e instanceof TraitbaseError && e.status === 409,
      )
    })

    test('with the build thread (as the server runs it) too: the thread reports the spread, not a failure', async () => {
      const p = await spreadNew('no-feed-thread')
      await store.applyUpload(p, batch(['a', { x: '1' }], ['b', { x: '2' }]))
      const logs: string[] = []
      const index = new SegmentIndex(store, {
        followIntervalMs: 0,
        buildSource: { kind: 'postgres', url: db.url },
        log: (m) => logs.push(m),
      })
      const where = { kind: 'text', field: 'x', op: 'eq', value: '1' } as const
      // The load, awaited: the thread's answer is "not indexed" (for good), not a failed build.
      await assert.rejects(index.sync(p), ProjectNotIndexedError)
      for (let i = 0; i < 3; i++) assert.equal((await index.query(p, where, 10)).source, 'database')
      assert.equal(await index.count(p, where), 1)
      assert.deepEqual(logs, [], 'no load failure logged')
      assert.equal(index.stats().loadFailures, 0)
      index.close()
    })

    test('refusals: bad count, a project with profiles, another count; the same count is a no-op', async () => {
      store ??= await open()
      const p = (await store.ensureProject('refusals')).id
      await assert.rejects(store.spreadProject(p, 1), (e: unknown) => e instanceof TraitbaseError && e.status === 400)
      await store.applyUpload(p, batch(['u', { a: '1' }]))
      await assert.rejects(store.spreadProject(p, 4), (e: unknown) => e instanceof TraitbaseError && e.status === 409)
      assert.deepEqual(plain(await store.getProfile(p, 'u')), { a: '1' })
      const q = await spreadNew('refusals-2', 4)
      assert.equal((await store.spreadProject(q, 4)).already, true)
      await assert.rejects(store.spreadProject(q, 8), (e: unknown) => e instanceof TraitbaseError && e.status === 409)
    })

    test('another process that looked before the spread switches on its next write and read', async () => {
      store ??= await open()
      const second = await open()
      const p = (await store.ensureProject('late-learner')).id
      // The second process sees the project as an ordinary one (empty)...
      assert.equal(await second.getProfile(p, 'x'), undefined)
      assert.equal(await second.countProfiles(p), 0)
      await store.spreadProject(p, 4)
      // ...its write function refuses the spread project and it retries on the spread path.
      await second.applyUpload(p, batch(['x', { a: '1' }], ['y', { a: '2' }]))
      assert.deepEqual(plain(await store.getProfile(p, 'x')), { a: '1' })
      assert.equal(await store.countProfiles(p), 2)
      const third = await open()
      assert.equal(await third.countProfiles(p), 2)
      assert.equal(await third.deleteProfile(p, 'y'), true)
      assert.equal(await second.countProfiles(p), 1)
      const { rows } = await store.pool.query('SELECT 1 FROM profiles WHERE project_id = $1', [p])
      assert.deepEqual(rows, [])
    })

    test('uploads racing with the spread land in one table: spread refused, or every row spread', async () => {
      store ??= await open()
      const writer = await open()
      for (let round = 0; round < 3; round++) {
        const p = (await store.ensureProject(`race-${round}`)).id
        const uploads = Array.from({ length: 20 }, (_, i) => writer.applyUpload(p, batch([`r${i}`, { a: String(i) }])))
        const spread = store.spreadProject(p, 4).then(
          () => 'spread',
          (e: unknown) => {
            assert.ok(e instanceof TraitbaseError && e.status === 409, String(e))
            return 'refused'
          },
        )
        const [outcome] = await Promise.all([spread, ...uploads])
        const { rows: local } = await store.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM profiles WHERE project_id = $1',
          [p],
        )
        const { rows: spreadRows } = await store.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM spread_profiles WHERE project_id = $1',
          [p],
        )
        if (outcome === 'spread') assert.deepEqual([local[0]?.n, spreadRows[0]?.n], [0, 20])
        else assert.deepEqual([local[0]?.n, spreadRows[0]?.n], [20, 0])
        assert.equal(await store.countProfiles(p), 20)
      }
    })
  })
}
