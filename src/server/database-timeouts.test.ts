import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { createTestDatabase, type TestDatabase } from '../storage/postgres/test-database.js'
import { buildTestApp } from './test-app.js'

/**
 * A slow database never hangs a request: a statement waiting on a locked row is cancelled by the
 * server's statement_timeout, a request waiting for a pooled connection gives up after the connect
 * timeout, and both are answered 503 with Retry-After. Skips without PostgreSQL (unless TRAITBASE_REQUIRE_PG=1).
 */
describe('database timeouts (PostgreSQL)', () => {
  let db: TestDatabase | undefined
  let skip: string | undefined
  before(async () => {
    const created = await createTestDatabase()
    if ('skip' in created) skip = created.skip
    else db = created
  })
  after(async () => db?.drop())

  test('locked row: 503 + Retry-After after DATABASE_STATEMENT_TIMEOUT_MS; a request queued for the one pooled connection: 503 after DATABASE_CONNECT_TIMEOUT_MS', async (t) => {
    if (db === undefined) return t.skip(skip)
    const { app, key } = await buildTestApp(
      t,
      { DATABASE_STATEMENT_TIMEOUT_MS: '2000', DATABASE_POOL_SIZE: '1', DATABASE_CONNECT_TIMEOUT_MS: '200' },
      undefined,
      db.url,
    )
    const k = await key('slow')
    const headers = { authorization: `Bearer ${k}`, 'content-type': 'application/json' }
    const post = (plan: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers,
        payload: JSON.stringify({ field_name: ['user_id', 'plan'], values: [['locked', plan]] }),
      })
    assert.equal((await post('a')).statusCode, 200)
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    try {
      await locker.query('BEGIN')
      await locker.query("SELECT 1 FROM profiles WHERE user_id = 'locked' FOR UPDATE")
      const blocked = post('b')
      // Let the upload take the pool's only connection and block on the lock.
      await new Promise((resolve) => setTimeout(resolve, 300))
      const queued = await app.inject({
        method: 'GET',
        url: '/v1/user/profiles/locked',
        headers: { authorization: `Bearer ${k}` },
      })
      assert.equal(queued.statusCode, 503, queued.body)
      assert.equal(queued.headers['retry-after'], '1')
      const res = await blocked
      assert.equal(res.statusCode, 503, res.body)
      assert.equal(res.headers['retry-after'], '1')
      assert.deepEqual(Object.keys(res.json()).sort(), ['msg', 'timestamp'], 'no internals')
    } finally {
      await locker.query('ROLLBACK')
      await locker.end()
    }
    // The database is fine again: so is the server.
    assert.equal((await post('c')).statusCode, 200)
  })
})
