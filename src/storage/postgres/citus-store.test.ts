import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import pg from 'pg'
import type { UploadBatch } from '../../core/upload.js'
import { openStore } from '../open-store.js'
import { describeStoreContract, type StoreFixture } from '../store.contract.js'
import type { Store } from '../store.js'
import { placementOf } from './citus-layout.js'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js'
import { PostgresStore } from './postgres-store.js'
import { createTestDatabase } from './test-database.js'

// The same store, on the three-node Citus cluster of ../shared/citus (TEST_CITUS_URL), each run in a
// schema of its own. CI sets TRAITBASE_REQUIRE_CITUS=1: a missing cluster fails instead of skipping.
const db = await createTestDatabase('citus')

function one(userId: string, a: Record<string, string>): UploadBatch {
  return { rows: 1, patches: [{ userId, attributes: Object.assign(Object.create(null), a) }] }
}

async function readAll(store: Store, projectId: number, token: string | null) {
  const feed = store.readChanges(projectId, token)
  const ids: string[] = []
  let reset = false
  for await (const page of feed.pages) {
    reset ||= page.reset
    ids.push(...page.upserts.map((x) => x.userId), ...page.deletedUserIds)
  }
  return { ids, reset, token: feed.token() }
}

test('citus layout rule: project_id with every unique index on it = distributed, else reference', () => {
  assert.equal(placementOf(true, true, null), 'distributed')
  assert.equal(placementOf(true, false, null), 'reference')
  assert.equal(placementOf(false, true, null), 'reference')
  assert.equal(placementOf(true, true, 'rows of the log; citus:reference'), 'reference')
  assert.equal(placementOf(false, true, 'citus:local'), 'local')
})

if ('skip' in db) {
  test('Citus store contract', (t) => t.skip(db.skip))
} else {
  after(() => db.drop())

  describeStoreContract('citus', async (): Promise<StoreFixture> => {
    const store = (await openStore(db.url)) as PostgresStore
    const failing: string[] = []
    return {
      store,
      // A CHECK constraint rather than a trigger: Citus puts it on every shard, where the rows are.
      // NOT VALID, so rows already there do not block adding it; any new row version is checked.
      async failWritesOf(userId) {
        failing.push(userId)
        const list = failing.map((u) => `'${u.replace(/'/g, "''")}'`).join(', ')
        await store.pool.query('ALTER TABLE profiles DROP CONSTRAINT IF EXISTS test_fail_writes')
        await store.pool.query(
          `ALTER TABLE profiles ADD CONSTRAINT test_fail_writes CHECK (user_id NOT IN (${list})) NOT VALID`,
        )
      },
      openSecond: () => openStore(db.url),
      openWithoutChangeLog: () => openStore(db.url, { changeLog: false }),
      close: () => store.close(),
    }
  })

  describe('citus specifics', () => {
    test('migrating places every table by the rule, idempotently, with servers starting at once', async () => {
      const fresh = await createTestDatabase('citus')
      assert.ok(!('skip' in fresh))
      try {
        const stores = Array.from({ length: 3 }, () => new PostgresStore(fresh.url))
        await Promise.all(stores.map((s) => s.migrate()))
        await (stores[0] as PostgresStore).migrate()
        const { rows } = await (stores[0] as PostgresStore).pool.query<{
          name: string
          kind: string
          column: string | null
          colocation: number
        }>(`SELECT logicalrelid::regclass::text AS name, partmethod AS kind,
                   column_to_column_name(logicalrelid, partkey) AS column, colocationid AS colocation
            FROM pg_dist_partition
            WHERE logicalrelid::regclass::text NOT LIKE '%.%' ORDER BY 1`)
        const byName = new Map(rows.map((r) => [r.name, r]))
        for (const name of ['profiles', 'change_log', 'change_horizon', 'segments']) {
          assert.equal(byName.get(name)?.kind, 'h', `${name} is hash-distributed`)
          assert.equal(byName.get(name)?.column, 'project_id')
          assert.equal(byName.get(name)?.colocation, byName.get('profiles')?.colocation, `${name} co-located`)
        }
        for (const name of ['projects', 'api_keys'])
          assert.equal(byName.get(name)?.kind, 'n', `${name} is a reference table`)
        assert.equal(byName.has('traitbase_migrations'), false)
        // Every table of the schema (including ones other migrations add) is placed, none forgotten.
        const { rows: unplaced } = await (stores[0] as PostgresStore).pool.query(
          `SELECT relname FROM pg_class c WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'
             AND relname <> 'traitbase_migrations'
             AND NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = c.oid)`,
        )
        assert.deepEqual(unplaced, [])
        const fns = await (stores[0] as PostgresStore).pool.query(
          `SELECT count(*)::int AS n FROM pg_dist_object o JOIN pg_proc f ON f.oid = o.objid
           WHERE o.distribution_argument_index IS NOT NULL AND f.pronamespace = current_schema()::regnamespace`,
        )
        assert.equal(fns.rows[0]?.n, 4)
        await Promise.all(stores.map((s) => s.close()))
      } finally {
        await fresh.drop()
      }
    })

    test('a cluster laid out by an earlier version migrates to this one (later migrations on distributed tables)', async () => {
      const fresh = await createTestDatabase('citus')
      assert.ok(!('skip' in fresh))
      const store = new PostgresStore(fresh.url)
      try {
        // Version 1: only the first migration, its tables distributed and referenced at once.
        await store.migrate(POSTGRES_MIGRATIONS.slice(0, 1))
        const before = await store.pool.query(
          `SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'profiles'::regclass`,
        )
        assert.equal(before.rows.length, 1)
        // Then every later migration runs against the distributed tables, and their new tables are placed.
        await store.migrate()
        const { rows } = await store.pool.query<{ id: string }>('SELECT id FROM traitbase_migrations ORDER BY id')
        assert.equal(rows.length, POSTGRES_MIGRATIONS.length)
        const p = (await store.ensureProject('upgraded')).id
        await store.applyUpload(p, one('u', { a: '1' }))
        assert.deepEqual((await readAll(store, p, null)).ids, ['u'])
      } finally {
        await store.close()
        await fresh.drop()
      }
    })

    test('an upload writes the change log with the xid of the worker holding the project', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      try {
        const p = (await store.ensureProject('xid-node')).id
        await store.applyUpload(p, one('u', { a: '1' }))
        // The change log's xid and the node's own counter must be of one space: on the owning worker,
        // the logged xid is below that worker's next xid and the snapshot the feed reads contains it.
        const { rows } = await store.pool.query<{ visible: boolean }>(
          `SELECT pg_visible_in_snapshot(xid, pg_current_snapshot()) AS visible FROM change_log WHERE project_id = $1`,
          [p],
        )
        assert.deepEqual(
          rows.map((r) => r.visible),
          [true],
        )
        const { rows: own } = await store.pool.query<{ mine: boolean }>(
          `SELECT xid::text::bigint < pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS mine
           FROM change_log WHERE project_id = $1`,
          [p],
        )
        assert.deepEqual(
          own.map((r) => r.mine),
          [true],
        )
      } finally {
        await store.close()
      }
    })

    test('the change feed is exact when uploads commit out of xid order on the worker', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      const locker = new pg.Client({ connectionString: db.url })
      await locker.connect()
      try {
        const p = (await store.ensureProject('out-of-order')).id
        await store.applyUpload(p, one('slow', { a: '0' }))
        const start = await readAll(store, p, null)
        // Hold the row of 'slow' so its next upload takes its xid on the worker, then waits.
        await locker.query('BEGIN')
        await locker.query(`SELECT 1 FROM profiles WHERE project_id = $1 AND user_id = 'slow' FOR UPDATE`, [p])
        const slow = store.applyUpload(p, one('slow', { a: '1' }))
        await new Promise((resolve) => setTimeout(resolve, 300))
        await store.applyUpload(p, one('fast', { b: '2' }))
        const first = await readAll(store, p, start.token)
        assert.deepEqual(first.ids, ['fast'])
        await locker.query('COMMIT')
        await slow
        const second = await readAll(store, p, first.token)
        assert.deepEqual(second.ids, ['slow'], 'the late commit is seen, and only it')
        assert.equal(second.reset, false)
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined)
        await locker.end()
        await store.close()
      }
    })

    test('a project isolated to its own shard and moved to another worker keeps an exact feed', async () => {
      const store = (await openStore(db.url)) as PostgresStore
      try {
        const p = (await store.ensureProject('big-tenant')).id
        await store.applyUpload(p, one('before', { a: '1' }))
        const first = await readAll(store, p, null)
        const moved = await store.isolateProject(p)
        assert.notEqual(moved.shardId, undefined)
        const { rows } = await store.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_dist_shard s JOIN pg_dist_shard_placement sp USING (shardid)
           WHERE s.shardid = $1::bigint AND sp.nodeport = $2`,
          [moved.shardId, moved.nodePort],
        )
        assert.equal(rows[0]?.n, 1, 'the project has a shard of its own on the node reported')
        await store.applyUpload(p, one('after', { b: '2' }))
        // The token names the node whose snapshot it holds: read on another node, it starts over.
        const next = await readAll(store, p, first.token)
        if (moved.movedFrom !== moved.nodePort) assert.equal(next.reset, true)
        assert.ok(next.ids.includes('after'))
        const again = await readAll(store, p, next.token)
        assert.deepEqual(again, { ids: [], reset: false, token: again.token })
        assert.equal(await store.countProfiles(p), 2)
      } finally {
        await store.close()
      }
    })
  })
}
