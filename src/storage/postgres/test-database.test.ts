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
