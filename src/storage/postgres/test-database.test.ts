import assert from 'node:assert/strict'
import { test } from 'node:test'
import pg from 'pg'
import { createTestDatabase } from './test-database.js'

test('createTestDatabase gives a fresh, empty database and drops it', async (t) => {
  const db = await createTestDatabase()
  if ('skip' in db) {
    t.skip(db.skip)
    return
  }
  assert.match(db.url, /\/traitbase_test_[0-9a-f]{12}$/)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  const { rows } = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
  )
  await client.end()
  assert.equal(rows[0]?.n, '0')
  await db.drop()
  const again = new pg.Client({ connectionString: db.url })
  await assert.rejects(again.connect(), /does not exist/)
  await again.end().catch(() => undefined)
})

test('an unreachable server skips, or fails when TRAITBASE_REQUIRE_PG=1', async () => {
  const saved = { url: process.env['TEST_DATABASE_URL'], req: process.env['TRAITBASE_REQUIRE_PG'] }
  process.env['TEST_DATABASE_URL'] = 'postgres://postgres@127.0.0.1:1/test'
  try {
    delete process.env['TRAITBASE_REQUIRE_PG']
    const r = await createTestDatabase()
    assert.ok('skip' in r)
    assert.match(r.skip, /127\.0\.0\.1:1/)
    process.env['TRAITBASE_REQUIRE_PG'] = '1'
    await assert.rejects(createTestDatabase(), /TRAITBASE_REQUIRE_PG=1/)
  } finally {
    restore('TEST_DATABASE_URL', saved.url)
    restore('TRAITBASE_REQUIRE_PG', saved.req)
  }
})

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}

test('createTestDatabase("citus") gives a fresh schema on the coordinator and drops it', async (t) => {
  const db = await createTestDatabase('citus')
  if ('skip' in db) return t.skip(db.skip)
  const schema = /search_path%3D(traitbase_test_[0-9a-f]{12})/.exec(db.url)?.[1]
  assert.ok(schema, db.url)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  try {
    const { rows } = await client.query<{ s: string }>('SELECT current_schema() AS s')
    assert.equal(rows[0]?.s, schema)
    await db.drop()
    const gone = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
    assert.equal(gone.rows.length, 0)
  } finally {
    await client.end()
  }
})

test('an unreachable Citus coordinator skips, or fails when TRAITBASE_REQUIRE_CITUS=1', async () => {
  const saved = { url: process.env['TEST_CITUS_URL'], req: process.env['TRAITBASE_REQUIRE_CITUS'] }
  process.env['TEST_CITUS_URL'] = 'postgres://postgres@127.0.0.1:1/postgres'
  try {
    delete process.env['TRAITBASE_REQUIRE_CITUS']
    const r = await createTestDatabase('citus')
    assert.ok('skip' in r)
    assert.match(r.skip, /Citus coordinator at .*127\.0\.0\.1:1/)
    process.env['TRAITBASE_REQUIRE_CITUS'] = '1'
    await assert.rejects(createTestDatabase('citus'), /TRAITBASE_REQUIRE_CITUS=1/)
  } finally {
    restore('TEST_CITUS_URL', saved.url)
    restore('TRAITBASE_REQUIRE_CITUS', saved.req)
  }
})

test('a plain PostgreSQL server is not taken for a Citus coordinator', async (t) => {
  const plain = await createTestDatabase()
  if ('skip' in plain) return t.skip(plain.skip)
  const saved = { url: process.env['TEST_CITUS_URL'], req: process.env['TRAITBASE_REQUIRE_CITUS'] }
  process.env['TEST_CITUS_URL'] = plain.url
  try {
    delete process.env['TRAITBASE_REQUIRE_CITUS']
    const r = await createTestDatabase('citus')
    assert.ok('skip' in r)
    assert.match(r.skip, /citus extension is not installed/)
  } finally {
    restore('TEST_CITUS_URL', saved.url)
    restore('TRAITBASE_REQUIRE_CITUS', saved.req)
    await plain.drop()
  }
})
