import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import pg from 'pg'
import { openStore } from '../open-store.js'
import { describeStoreContract, type StoreFixture } from '../store.contract.js'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js'
import { evaluateCondition, type Condition } from '../../core/segment.js'
import { INDEXED_SHAPES, SHAPE_INDEXES, shapeProfiles, UNINDEXED_SHAPE } from '../attribute-index-plans.js'
import { PostgresStore, postgresCountSql, postgresScanSql } from './postgres-store.js'
import { createTestDatabase, DEFAULT_TEST_DATABASE_URL } from './test-database.js'

const db = await createTestDatabase()

if ('skip' in db) {
  test('PostgreSQL store contract', (t) => t.skip(db.skip))
} else {
  after(() => db.drop())

  describeStoreContract('postgres', async (): Promise<StoreFixture> => {
    const store = (await openStore(db.url)) as PostgresStore
    await store.pool.query(`
      CREATE TABLE IF NOT EXISTS test_fail_users (user_id text PRIMARY KEY);
      CREATE OR REPLACE FUNCTION test_fail_writes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM test_fail_users WHERE user_id = NEW.user_id) THEN
          RAISE EXCEPTION 'forced failure for %', NEW.user_id;
        END IF;
        RETURN NEW;
      END $$;
      DROP TRIGGER IF EXISTS test_fail_writes ON profiles;
      CREATE TRIGGER test_fail_writes BEFORE INSERT OR UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION test_fail_writes();
    `)
    return {
      store,
      async failWritesOf(userId) {
        await store.pool.query('INSERT INTO test_fail_users VALUES ($1) ON CONFLICT DO NOTHING', [userId])
      },
      openSecond: () => openStore(db.url),
      openWithoutChangeLog: () => openStore(db.url, { changeLog: false }),
      close: () => store.close(),
    }
  })

  describe('postgres specifics', () => {
    test('servers migrating one fresh database at once all succeed (advisory lock)', async () => {
      const fresh = await createTestDatabase()
      assert.ok(!('skip' in fresh))
      try {
        const stores = Array.from({ length: 4 }, () => new PostgresStore(fresh.url))
        await Promise.all(stores.map((s) => s.migrate()))
        const { rows } = await (stores[0] as PostgresStore).pool.query('SELECT id FROM traitbase_migrations')
        assert.equal(rows.length, POSTGRES_MIGRATIONS.length)
        await Promise.all(stores.map((s) => s.close()))
      } finally {
        await fresh.drop()
      }
    })

    test('the change feed is exact when transactions commit out of xid order', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      const slow = new pg.Client({ connectionString: db.url })
      await slow.connect()
      try {
        const p = (await store.ensureProject('out-of-order')).id
        const start = store.readChanges(p, null)
        for await (const _ of start.pages);
        // The slow transaction takes its xid first but commits last.
        await slow.query('BEGIN')
        await slow.query(`INSERT INTO profiles VALUES ($1, 'slow', '{"a":"1"}', now(), now())`, [p])
        await slow.query(
          `INSERT INTO change_log (project_id, xid, user_id) VALUES ($1, pg_current_xact_id(), 'slow')`,
          [p],
        )
        await store.applyUpload(p, {
          rows: 1,
          patches: [{ userId: 'fast', attributes: Object.assign(Object.create(null), { b: '2' }) }],
        })
        const first = store.readChanges(p, start.token())
        const seen1: string[] = []
        for await (const page of first.pages) seen1.push(...page.upserts.map((x) => x.userId))
        assert.deepEqual(seen1, ['fast'])
        await slow.query('COMMIT')
        const second = store.readChanges(p, first.token())
        const seen2: string[] = []
        for await (const page of second.pages) seen2.push(...page.upserts.map((x) => x.userId))
        assert.ok(seen2.includes('slow'), `the late commit must be seen: ${seen2.join(',')}`)
      } finally {
        await slow.end()
        await store.close()
      }
    })

    test('a long transaction in another database neither repeats changes nor forces resets', async () => {
      const store = await openStore(db.url, { changeRetentionMs: 0 })
      const elsewhere = new pg.Client({
        connectionString: process.env['TEST_DATABASE_URL'] || DEFAULT_TEST_DATABASE_URL,
      })
      await elsewhere.connect()
      try {
        await elsewhere.query('BEGIN')
        await elsewhere.query('SELECT pg_current_xact_id()')
        const p = (await store.ensureProject('long-elsewhere')).id
        const one = (id: string) => ({
          rows: 1,
          patches: [{ userId: id, attributes: Object.assign(Object.create(null), { a: '1' }) }],
        })
        const read = async (token: string | null) => {
          const feed = store.readChanges(p, token)
          const ids: string[] = []
          let reset = false
          for await (const page of feed.pages) {
            reset ||= page.reset
            ids.push(...page.upserts.map((x) => x.userId), ...page.deletedUserIds)
          }
          return { ids, reset, token: feed.token() }
        }
        await store.applyUpload(p, one('a'))
        const first = await read(null)
        await store.applyUpload(p, one('b'))
        const second = await read(first.token)
        assert.deepEqual(second.ids, ['b'])
        await store.applyUpload(p, one('c'))
        await new Promise((resolve) => setTimeout(resolve, 10))
        await store.pruneChanges(new Date())
        const third = await read(second.token)
        assert.equal(third.reset, false)
        assert.deepEqual(third.ids, ['c'])
      } finally {
        await elsewhere.query('ROLLBACK')
        await elsewhere.end()
        await store.close()
      }
    })

    test('old change-log entries are pruned automatically, so a stale token resets', async () => {
      const store = await openStore(db.url, { changeRetentionMs: 1, pruneIntervalMs: 20 })
      try {
        const p = (await store.ensureProject('auto-prune')).id
        const one = { rows: 1, patches: [{ userId: 'u', attributes: Object.assign(Object.create(null), { a: '1' }) }] }
        await store.applyUpload(p, one)
        const first = store.readChanges(p, null)
        for await (const _ of first.pages);
        await store.applyUpload(p, one)
        await new Promise((resolve) => setTimeout(resolve, 300))
        const again = store.readChanges(p, first.token())
        const pages = []
        for await (const page of again.pages) pages.push(page)
        assert.equal(pages[0]?.reset, true)
      } finally {
        await store.close()
      }
    })

    test('profiles are stored with fillfactor and without secondary indexes; user_id is COLLATE "C"', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      try {
        const { rows } = await store.pool.query<{ reloptions: string[] }>(
          "SELECT reloptions FROM pg_class WHERE relname = 'profiles'",
        )
        assert.deepEqual(rows[0]?.reloptions, ['fillfactor=75'])
        // Attribute indexes (tb_attr_…) are the operator's opt-in per project, not part of the schema.
        const idx = await store.pool.query(
          "SELECT indexname FROM pg_indexes WHERE tablename = 'profiles' AND indexname NOT LIKE 'tb\\_attr\\_%'",
        )
        assert.deepEqual(
          idx.rows.map((r: { indexname: string }) => r.indexname),
          ['profiles_pkey'],
        )
        const coll = await store.pool.query(
          "SELECT collation_name FROM information_schema.columns WHERE table_name = 'profiles' AND column_name = 'user_id'",
        )
        assert.equal(coll.rows[0]?.collation_name, 'C')
      } finally {
        await store.close()
      }
    })
  })
}

if (!('skip' in db)) {
  describe('postgres attribute indexes: the planner can use them (a scan would fail these)', () => {
    test('count and first page of eq, in, range, not_exists and all-of search the index; an attribute without one does not', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      try {
        const p = (await store.ensureProject('plans')).id
        const rows = shapeProfiles(3000)
        const patches = rows.map(([userId, a]) => ({
          userId,
          attributes: Object.assign(Object.create(null), a) as Record<string, string>,
        }))
        await store.applyUpload(p, { rows: patches.length, patches })
        for (const [name, kind] of SHAPE_INDEXES) await store.createAttributeIndex(p, name, kind)
        const client = await store.pool.connect()
        // Sequential scans priced out: the plan uses an index if one matches the compiled expression.
        const plan = async ({ sql, params }: { sql: string; params: unknown[] }, page = false): Promise<string> => {
          await client.query('BEGIN')
          try {
            await client.query('SET LOCAL enable_seqscan = off')
            if (page) await client.query('SET LOCAL enable_sort = off')
            const { rows: out } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)
            return out.map((r) => r['QUERY PLAN']).join('\n')
          } finally {
            await client.query('ROLLBACK')
          }
        }
        try {
          for (const shape of INDEXED_SHAPES) {
            // An Index Cond on the attribute's expression: the index narrows the rows, not just the project.
            assert.match(
              await plan(postgresCountSql(p, shape.where)),
              /Index Scan (on|using) tb_attr_\w+[^\n]*\n\s+Index Cond: [^\n]*attributes ->> '(plan|language|ltv|city)'/,
              shape.name,
            )
          }
          const eq = INDEXED_SHAPES[0]?.where as Condition
          const page = await plan(postgresScanSql(p, { where: eq, limit: 101 }), true)
          assert.match(page, /Index Scan using tb_attr_\w+ on profiles/)
          assert.doesNotMatch(page, /Sort/)
          assert.doesNotMatch(await plan(postgresCountSql(p, UNINDEXED_SHAPE)), /Index Cond: [^\n]*email/)
        } finally {
          client.release()
        }
        const where = INDEXED_SHAPES[2]?.where as Condition
        assert.equal(
          await store.countProfiles(p, where),
          rows.filter(([id, a]) => evaluateCondition(where, id, a)).length,
        )
      } finally {
        await store.close()
      }
    })
  })
}
