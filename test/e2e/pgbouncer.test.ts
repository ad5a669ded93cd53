import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import { openStore } from '../../src/storage/open-store.js'
import { createTestDatabase, type TestDatabase } from '../../src/storage/postgres/test-database.js'
import { buildTestApp } from '../../src/server/test-app.js'
import { startPgbouncer, type Bouncer } from './pgbouncer.js'

/**
 * The server behind PgBouncer in transaction pooling mode, with 2 server connections shared by
 * every client: migrations (several at once), uploads, reads, deletes, segments, idempotent retries
 * and the timeouts all work without session state. Skips (and says why) without PostgreSQL or the
 * `pgbouncer` binary, unless TRAITBASE_REQUIRE_PGBOUNCER=1 (CI).
 */
describe('behind PgBouncer (transaction pooling)', () => {
  let db: TestDatabase | undefined
  let bouncer: Bouncer | undefined
  let skip: string | undefined

  before(async () => {
    const created = await createTestDatabase()
    if ('skip' in created) skip = created.skip
    else {
      db = created
      bouncer = await startPgbouncer(db.url)
      if (bouncer === undefined) skip = 'pgbouncer is not installed (apt-get install pgbouncer)'
    }
    if (skip !== undefined && process.env['TRAITBASE_REQUIRE_PGBOUNCER'] === '1') throw new Error(skip)
    if (skip !== undefined) process.stdout.write(`# skipping PgBouncer tests: ${skip}\n`)
  })
  after(async () => {
    await bouncer?.stop()
    await db?.drop()
  })

  const env = { DATABASE_PGBOUNCER: '1' }

  test('four servers migrating at once through PgBouncer: each migration applied once', async (t) => {
    if (bouncer === undefined || db === undefined) return t.skip(skip)
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => openStore(bouncer!.url, { pgbouncer: true, poolSize: 2 })),
    )
    await Promise.all(stores.map((s) => s.close()))
    const direct = new pg.Client({ connectionString: db.url })
    await direct.connect()
    try {
      const { rows } = await direct.query<{ id: string; n: number }>(
        'SELECT id, count(*)::int AS n FROM traitbase_migrations GROUP BY id',
      )
      assert.ok(rows.length >= 3, JSON.stringify(rows))
      assert.ok(
        rows.every((r) => r.n === 1),
        JSON.stringify(rows),
      )
    } finally {
      await direct.end()
    }
  })

  test('uploads, reads, deletes, exact segment counts and idempotent replays, 12 pooled clients on 2 server connections', async (t) => {
    if (bouncer === undefined) return t.skip(skip)
    const ctx = await buildTestApp(t, env, undefined, bouncer.url)
    await ctx.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`
    const k = await ctx.key('bounced')
    const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(base + path, {
        method,
        headers: {
          authorization: `Bearer ${k}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return {
        status: res.status,
        headers: res.headers,
        json: (await res.json()) as {
          msg: string
          data: Record<string, unknown> & { count?: number; attributes?: unknown }
        },
      }
    }
    // 30 concurrent uploads of overlapping users (u0…u99, each written by 3 requests).
    const uploads = Array.from({ length: 30 }, (_, r) =>
      call('POST', '/v1/user/profiles', {
        field_name: ['user_id', 'plan', `r${r % 3}`],
        values: Array.from({ length: 10 }, (_, i) => [`u${(r * 10 + i) % 100}`, i % 2 === 0 ? 'pro' : 'free', 'x']),
      }),
    )
    assert.deepEqual(
      (await Promise.all(uploads)).map((r) => r.status),
      Array(30).fill(200),
    )
    const one = await call('GET', '/v1/user/profiles/u7')
    assert.equal(one.status, 200)
    assert.deepEqual(one.json.data.attributes, { plan: 'free', r0: 'x', r1: 'x', r2: 'x' })
    const where = { field: 'plan', op: 'eq', value: 'pro' }
    assert.equal((await call('POST', '/v1/user/segments/query', { where })).json.data.count, 50)
    assert.equal((await call('DELETE', '/v1/user/profiles/u0')).status, 200)
    assert.equal((await call('POST', '/v1/user/segments/query', { where })).json.data.count, 49)

    const body = { field_name: ['user_id', 'plan'], values: [['u0', 'pro']] }
    const first = await call('POST', '/v1/user/profiles', body, { 'idempotency-key': '"bounce-1"' })
    const again = await call('POST', '/v1/user/profiles', body, { 'idempotency-key': '"bounce-1"' })
    assert.equal(first.status, 200)
    assert.equal(again.headers.get('idempotent-replayed'), 'true')
    const other = await call(
      'POST',
      '/v1/user/profiles',
      { ...body, values: [['u0', 'free']] },
      { 'idempotency-key': 'bounce-1' },
    )
    assert.equal(other.status, 422)
    assert.equal((await call('POST', '/v1/user/segments/query', { where })).json.data.count, 50)
  })

  test('a statement stuck on a locked row: 503 with Retry-After (client-side timeout; PgBouncer takes no statement_timeout)', async (t) => {
    if (bouncer === undefined || db === undefined) return t.skip(skip)
    const ctx = await buildTestApp(t, { ...env, DATABASE_STATEMENT_TIMEOUT_MS: '300' }, undefined, bouncer.url)
    const k = await ctx.key('slow')
    const post = (plan: string) =>
      ctx.app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ field_name: ['user_id', 'plan'], values: [['locked', plan]] }),
      })
    assert.equal((await post('a')).statusCode, 200)
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    try {
      await locker.query('BEGIN')
      await locker.query("SELECT 1 FROM profiles WHERE user_id = 'locked' FOR UPDATE")
      const started = Date.now()
      const res = await post('b')
      assert.equal(res.statusCode, 503, res.body)
      assert.equal(res.headers['retry-after'], '1')
      assert.ok(Date.now() - started < 20_000, 'bounded by the timeout, not by the lock')
    } finally {
      await locker.query('ROLLBACK')
      await locker.end()
    }
  })
})
