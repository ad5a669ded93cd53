import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test, type TestContext } from 'node:test'
import { createTestDatabase, type TestDatabase } from '../storage/postgres/test-database.js'
import { buildTestApp } from './test-app.js'

/**
 * The HTTP rules that depend on the backend, over real sockets against PostgreSQL: the same answers
 * as on SQLite, atomic requests, and concurrent writers to the same users without deadlocks or
 * lost attributes. Skips (and says why) when PostgreSQL is unreachable, unless TRAITBASE_REQUIRE_PG=1.
 */
describe('HTTP on PostgreSQL', () => {
  let db: TestDatabase | undefined
  let skip: string | undefined

  before(async () => {
    const created = await createTestDatabase()
    if ('skip' in created) {
      skip = created.skip
      process.stdout.write(`# skipping PostgreSQL HTTP tests: ${skip}\n`)
    } else {
      db = created
    }
  })
  after(async () => db?.drop())

  /** A listening app on the shared test database, with a key for a project of its own. */
  async function serve(
    t: TestContext,
  ): Promise<{ base: string; k: string; key: (p: string) => Promise<string> } | undefined> {
    if (db === undefined) {
      t.skip(skip)
      return undefined
    }
    const ctx = await buildTestApp(t, {}, undefined, db.url)
    await ctx.app.listen({ port: 0, host: '127.0.0.1' })
    const address = ctx.app.server.address()
    assert.ok(address !== null && typeof address === 'object')
    const project = `p-${randomBytes(4).toString('hex')}`
    return {
      base: `http://127.0.0.1:${address.port}`,
      k: await ctx.key(project),
      key: (p) => ctx.key(`${project}-${p}`),
    }
  }

  const upload = async (base: string, k: string, body: unknown): Promise<{ status: number; msg: string }> => {
    const res = await fetch(`${base}/v1/user/profiles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const json = (await res.json()) as { msg: string }
    return { status: res.status, msg: json.msg }
  }

  const attributes = async (base: string, k: string, userId: string): Promise<Record<string, string> | undefined> => {
    const res = await fetch(`${base}/v1/user/profiles/${encodeURIComponent(userId)}`, {
      headers: { authorization: `Bearer ${k}` },
    })
    if (res.status === 404) {
      await res.arrayBuffer()
      return undefined
    }
    assert.equal(res.status, 200)
    return ((await res.json()) as { data: { attributes: Record<string, string> } }).data.attributes
  }

  test('the spec example, the update policy, clears and repeated rows read back as on SQLite', async (t) => {
    const s = await serve(t)
    if (!s) return
    const example = {
      field_name: ['user_id', 'watch_conan', 'watch_attack_on_titan'],
      values: [
        ['abcd123', 'yes', 'no'],
        ['abcd456', 'yes', 'yes'],
        ['abcd789', 'no', 'no'],
      ],
    }
    assert.deepEqual(await upload(s.base, s.k, example), { status: 200, msg: 'Success' })
    const second = {
      field_name: ['user_id', 'watch_conan', 'new_attr', 'n'],
      values: [
        ['abcd123', 'no', 'x', 1],
        ['abcd123', '', 'y', true],
      ],
    }
    assert.equal((await upload(s.base, s.k, second)).status, 200)
    assert.deepEqual(await attributes(s.base, s.k, 'abcd123'), {
      watch_attack_on_titan: 'no',
      new_attr: 'y',
      n: 'true',
    })
    assert.deepEqual(await attributes(s.base, s.k, 'abcd456'), { watch_conan: 'yes', watch_attack_on_titan: 'yes' })
  })

  test('special user ids and field names round-trip', async (t) => {
    const s = await serve(t)
    if (!s) return
    const ids = ['a/b', '100%', 'sp ace', 'ユーザー', '😀'.repeat(128), '__proto__', 'constructor']
    const res = await upload(s.base, s.k, {
      field_name: ['user_id', '__proto__', '漢字'],
      values: ids.map((id, i) => [id, String(i), '値']),
    })
    assert.equal(res.status, 200, res.msg)
    for (const [i, id] of ids.entries()) {
      const got = await attributes(s.base, s.k, id)
      assert.ok(got, id)
      // jsonb keeps its own key order; the attribute set is what matters.
      assert.deepEqual(
        Object.entries(got).sort(),
        [
          ['__proto__', String(i)],
          ['漢字', '値'],
        ].sort(),
        id,
      )
    }
  })

  test('atomic: a row the database cannot store fails the whole request, nothing stored, no 5xx', async (t) => {
    const s = await serve(t)
    if (!s) return
    const res = await upload(s.base, s.k, {
      field_name: ['user_id', 'a'],
      values: [
        ['ok-1', 'x'],
        ['ok-2', 'bad\u0000value'],
      ],
    })
    assert.equal(res.status, 400, res.msg)
    assert.equal(await attributes(s.base, s.k, 'ok-1'), undefined)
  })

  test('isolation: the same user_id in two projects is two users', async (t) => {
    const s = await serve(t)
    if (!s) return
    const other = await s.key('other')
    await upload(s.base, s.k, { field_name: ['user_id', 'a'], values: [['shared', '1']] })
    await upload(s.base, other, { field_name: ['user_id', 'b'], values: [['shared', '2']] })
    assert.deepEqual(await attributes(s.base, s.k, 'shared'), { a: '1' })
    assert.deepEqual(await attributes(s.base, other, 'shared'), { b: '2' })
  })

  test('concurrent writers to the same users in different orders: all 200, no deadlock, no attribute lost', async (t) => {
    const s = await serve(t)
    if (!s) return
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`)
    const writers = 16
    const statuses = await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        const order = w % 2 === 0 ? [...users].reverse() : users.map((_, i) => users[(i * 37 + w) % 100] as string)
        const res = await upload(s.base, s.k, {
          field_name: ['user_id', `attr_${w}`],
          values: order.map((u) => [u, `w${w}`]),
        })
        return res.status
      }),
    )
    assert.deepEqual(statuses, Array(writers).fill(200))
    for (const u of users) {
      const got = await attributes(s.base, s.k, u)
      assert.ok(got)
      for (let w = 0; w < writers; w++) assert.equal(got[`attr_${w}`], `w${w}`, `${u} attr_${w}`)
    }
  })
})

describe('PostgreSQL going away', () => {
  test('requests get 503 with Retry-After, not 500, once the database is gone; /healthz says 503', async (t) => {
    const created = await createTestDatabase()
    if ('skip' in created) return t.skip(created.skip)
    const ctx = await buildTestApp(t, {}, undefined, created.url)
    const k = await ctx.key('p')
    const headers = { authorization: `Bearer ${k}`, 'content-type': 'application/json' }
    const body = JSON.stringify({ field_name: ['user_id', 'a'], values: [['u1', 'x']] })
    const ok = await ctx.app.inject({ method: 'POST', url: '/v1/user/profiles', headers, payload: body })
    assert.equal(ok.statusCode, 200)
    await created.drop()
    const requests = [
      { method: 'POST' as const, url: '/v1/user/profiles', payload: body },
      { method: 'GET' as const, url: '/v1/user/profiles/u1' },
      { method: 'DELETE' as const, url: '/v1/user/profiles/u1' },
    ]
    for (const r of requests) {
      const res = await ctx.app.inject({ ...r, headers })
      assert.equal(res.statusCode, 503, `${r.method} ${r.url}: ${res.body}`)
      assert.equal(res.headers['retry-after'], '1')
      assert.deepEqual(Object.keys(res.json() as object), ['msg', 'timestamp'])
    }
    // A key this process has not seen yet needs the database too: still a 503, not a 500 or a 401.
    const other = await ctx.app.inject({
      method: 'GET',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer tbk_${'A'.repeat(43)}` },
    })
    assert.equal(other.statusCode, 503)
    const health = await ctx.app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(health.statusCode, 503)
  })
})
