import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import pg from 'pg'
import { openStore } from '../open-store.js'
import { describeStoreContract, type StoreFixture } from '../store.contract.js'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js'
import { evaluateCondition, type Condition } from '../../core/segment.js'
import { INDEXED_SHAPES, loadShapeProfiles, SHAPE_INDEXES, UNINDEXED_SHAPE } from '../attribute-index-plans.js'
import { PostgresStore, postgresCountSql } from './postgres-store.js'
import {
  ATTRIBUTE_VALUES_LOCK,
  attributeValuesCountSql,
  attributeValuesScanSql,
  buildAttributeValues,
} from './attribute-values.js'
import { attributeIndexName, createAttributeIndexSql } from '../attribute-index.js'
import { postgresDialect } from '../sql-dialect.js'
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
        const rows = await loadShapeProfiles(store, p, 3000)
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
        // Text indexes are the side table (attribute-values.ts), number indexes expression indexes.
        const text = new Set(SHAPE_INDEXES.filter(([, kind]) => kind === 'text').map(([name]) => name))
        try {
          for (const shape of INDEXED_SHAPES) {
            const side = attributeValuesCountSql(p, shape.where, text)
            if (side === undefined) {
              // An Index Cond on the attribute's expression: the index narrows the rows, not just the project.
              assert.match(
                await plan(postgresCountSql(p, shape.where)),
                /Index Scan (on|using) tb_attr_\w+[^\n]*\n\s+Index Cond: [^\n]*attributes ->> '(ltv)'/,
                shape.name,
              )
              continue
            }
            // Counted from the side table's key alone: no heap visit for the attribute's ranges.
            const counted = await plan(side)
            assert.match(counted, /Index Only Scan using attribute_values_pkey on attribute_values/, shape.name)
            assert.doesNotMatch(
              counted,
              /(Heap|Seq) Scan on attribute_values|Index Scan using attribute_values/,
              shape.name,
            )
            if (shape.name !== 'not_exists') assert.doesNotMatch(counted, /profiles/, shape.name)
          }
          for (const shape of INDEXED_SHAPES.filter((s) => ['eq', 'in', 'all of 2 eq'].includes(s.name))) {
            const scan = attributeValuesScanSql(p, { where: shape.where, limit: 101 }, text)
            assert.ok(scan !== undefined, shape.name)
            const page = await plan(scan, true)
            // The ranges walked in user_id order (an in: a page of each value's range, the first of
            // those sorted), then one profile per candidate.
            assert.match(page, /Index Only Scan using attribute_values_pkey/, shape.name)
            assert.match(page, /Index Scan using profiles_pkey on profiles/, shape.name)
            assert.doesNotMatch(page, /Seq Scan|Hash/, shape.name)
            if (shape.name === 'in')
              assert.match(page, /Sort[^\n]*\n[^\n]*Nested Loop[^\n]*\n[^\n]*Function Scan on unnest/)
            else assert.doesNotMatch(page, /Sort/, shape.name)
          }
          assert.equal(attributeValuesCountSql(p, UNINDEXED_SHAPE, text), undefined)
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

if (!('skip' in db)) {
  describe('postgres text indexes: the side table attribute_values stays exact', () => {
    const attrs = (o: Record<string, string | null>) => Object.assign(Object.create(null), o) as Record<string, string>
    const upload = (store: PostgresStore, p: number, rows: [string, Record<string, string | null>][]) =>
      store.applyUpload(p, {
        rows: rows.length,
        patches: [...rows]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([userId, a]) => ({ userId, attributes: attrs(a) })),
      })
    /** Rows the side table holds for the project that a fresh backfill would not, and the other way round. */
    const drift = async (store: PostgresStore, p: number, names: string[]): Promise<unknown[]> => {
      const { rows } = await store.pool.query(
        `WITH want AS (
           SELECT n.name, coalesce('v' || (p.attributes ->> n.name), '') AS value, p.user_id
           FROM profiles p, unnest($2::text[]) AS n(name) WHERE p.project_id = $1
         ), have AS (SELECT name, value, user_id FROM attribute_values WHERE project_id = $1)
         (SELECT 'missing' AS what, * FROM (SELECT * FROM want EXCEPT SELECT * FROM have) m)
         UNION ALL (SELECT 'stale', * FROM (SELECT * FROM have EXCEPT SELECT * FROM want) s)`,
        [p, names],
      )
      return rows
    }
    /** Resolves once some session waits for the project's build lock (shared or exclusive). */
    const lockWaiter = async (store: PostgresStore, p: number): Promise<void> => {
      for (let i = 0; i < 500; i++) {
        const { rows } = await store.pool.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND NOT granted`,
          [ATTRIBUTE_VALUES_LOCK, p],
        )
        if (rows.length > 0) return
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      throw new Error('nobody waited for the lock')
    }
    const seed = (n: number): [string, Record<string, string>][] =>
      Array.from({ length: n }, (_, i) => [
        `u${String(i).padStart(3, '0')}`,
        { plan: ['free', 'pro', 'team'][i % 3] as string, note: `n${i}` },
      ])

    test('a write whose trigger ran before the build is waited for and backfilled', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      const writer = new pg.Client({ connectionString: db.url })
      await writer.connect()
      try {
        const p = (await store.ensureProject('race-before')).id
        await upload(store, p, seed(50))
        await writer.query('BEGIN')
        await writer.query(
          `UPDATE profiles SET attributes = attributes || '{"plan":"late"}' WHERE project_id = $1 AND user_id = 'u001'`,
          [p],
        )
        const build = store.createAttributeIndex(p, 'plan', 'text')
        await lockWaiter(store, p)
        await writer.query('COMMIT')
        assert.equal((await build).created, true)
        assert.deepEqual(await drift(store, p, ['plan']), [])
        assert.equal(await store.countProfiles(p, { kind: 'text', field: 'plan', op: 'eq', value: 'late' }), 1)
      } finally {
        await writer.end().catch(() => undefined)
        await store.close()
      }
    })

    test('a write that lands during the backfill waits in its trigger and then applies its change', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      const builder = await store.pool.connect()
      try {
        const p = (await store.ensureProject('race-during')).id
        await upload(store, p, seed(50))
        let write: Promise<unknown> | undefined
        const built = await buildAttributeValues(builder, p, 'plan', attributeIndexName(p, 'plan', 'text'), {
          async locked() {
            // Its rows change now (the backfill's snapshot will not see them); its trigger waits for the build.
            write = upload(store, p, [
              ['u000', { plan: 'pro' }],
              ['u001', { plan: null }],
              ['u002', { plan: 'new' }],
              ['u999', { plan: 'free' }],
            ])
            await lockWaiter(store, p)
          },
        })
        assert.equal(built, true)
        await write
        assert.deepEqual(await drift(store, p, ['plan']), [])
        assert.equal(await store.countProfiles(p, { kind: 'text', field: 'plan', op: 'eq', value: 'new' }), 1)
        assert.equal(await store.countProfiles(p, { kind: 'presence', field: 'plan', op: 'not_exists' }), 1)
      } finally {
        builder.release()
        await store.close()
      }
    })

    test('only changed pairs are written; direct SQL writes are kept too', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      try {
        const p = (await store.ensureProject('only-changes')).id
        await upload(store, p, seed(20))
        await store.createAttributeIndex(p, 'plan', 'text')
        await store.createAttributeIndex(p, 'note', 'text')
        const versions = async () =>
          new Map(
            (
              await store.pool.query<{ k: string; x: string }>(
                `SELECT name || '/' || user_id AS k, xmin::text AS x FROM attribute_values WHERE project_id = $1`,
                [p],
              )
            ).rows.map((r) => [r.k, r.x]),
          )
        const before = await versions()
        // Same indexed values, another attribute changed: no pair rewritten.
        await upload(store, p, [
          ['u000', { plan: 'free', other: 'x' }],
          ['u001', { plan: 'pro', note: 'n1' }],
        ])
        assert.deepEqual(await versions(), before)
        await upload(store, p, [['u000', { plan: 'team' }]])
        const after = await versions()
        assert.notEqual(after.get('plan/u000'), before.get('plan/u000'))
        assert.equal(after.get('note/u000'), before.get('note/u000'))
        assert.equal(after.size, before.size)
        await store.pool.query(
          `UPDATE profiles SET attributes = attributes - 'note' WHERE project_id = $1 AND user_id = 'u002'`,
          [p],
        )
        await store.pool.query(`DELETE FROM profiles WHERE project_id = $1 AND user_id = 'u003'`, [p])
        await store.pool.query(
          `INSERT INTO profiles VALUES ($1, 'v1', '{"plan":"pro","note":"z"}', now(), now()),
             ($1, 'v2', '{"plan":"pro"}', now(), now())`,
          [p],
        )
        assert.deepEqual(await drift(store, p, ['plan', 'note']), [])
        // A drop deletes the attribute's pairs; the other index keeps its own.
        await store.dropAttributeIndex(p, 'note', 'text')
        assert.deepEqual(await drift(store, p, ['plan']), [])
      } finally {
        await store.close()
      }
    })

    test('an upgraded database moves its text expression indexes into the side table', async () => {
      const fresh = await createTestDatabase()
      assert.ok(!('skip' in fresh))
      const store = new PostgresStore(fresh.url)
      try {
        await store.migrate(POSTGRES_MIGRATIONS.filter((m) => m.id !== '0004_attribute_values'))
        const p = (await store.ensureProject('upgrade')).id
        await upload(store, p, seed(30))
        // What the previous version built for `projects index --project upgrade plan`.
        await store.pool.query(createAttributeIndexSql(postgresDialect, p, 'plan', 'text'))
        await store.pool.query(
          `INSERT INTO attribute_indexes (project_id, name, kind, index_name) VALUES ($1, 'plan', 'text', $2)`,
          [p, attributeIndexName(p, 'plan', 'text')],
        )
        await store.migrate()
        const { rows } = await store.pool.query('SELECT 1 FROM pg_class WHERE relname = $1', [
          attributeIndexName(p, 'plan', 'text'),
        ])
        assert.deepEqual(rows, [], 'the expression index is dropped')
        assert.deepEqual(await drift(store, p, ['plan']), [])
        await upload(store, p, [['u000', { plan: 'pro' }]])
        assert.equal(await store.countProfiles(p, { kind: 'text', field: 'plan', op: 'eq', value: 'pro' }), 11)
        await store.pool.query('TRUNCATE profiles')
        assert.deepEqual((await store.pool.query('SELECT 1 FROM attribute_values')).rows, [])
      } finally {
        await store.close()
        await fresh.drop()
      }
    })
  })
}
