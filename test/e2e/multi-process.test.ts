import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { createTestKey } from '../../src/server/test-app.js'
import { redisSkipReason, TEST_REDIS_URL as REDIS_URL } from '../../src/server/test-redis.js'
import { openStore } from '../../src/storage/open-store.js'
import { createTestDatabase, type TestBackend } from '../../src/storage/postgres/test-database.js'
import { SERVER } from './processes.js'

const USERS = 200
const REQUESTS = 40
const PER_REQUEST = 50

interface Answer {
  status: number
  headers: Headers
  text: string
  json: { msg: string; data?: { count?: number; attributes?: Record<string, string> } }
}

async function call(
  base: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
  headers = {},
): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as Answer['json'] }
}

/** Request r writes users r·5 … r·5+49 (mod 200): every user is written by 10 requests, half of them through each server. */
function uploadOf(r: number): { field_name: string[]; values: string[][] } {
  const values: string[][] = []
  for (let i = 0; i < PER_REQUEST; i++) {
    const u = (r * 5 + i) % USERS
    values.push([`u${u}`, u % 2 === 0 ? 'pro' : 'free', '1'])
  }
  return { field_name: ['user_id', 'plan', `w${r}`], values }
}

// The proof: two server processes on different ports, one database (a 3-node Citus cluster,
// and plain PostgreSQL), one Redis.
for (const backend of ['citus', 'postgres'] as TestBackend[]) {
  describe(`two server processes, one ${backend} database, one Redis`, () => {
    const servers: ServerProcess[] = []
    let cleanup: () => Promise<void> = async () => undefined
    const logDir = mkdtempSync(join(tmpdir(), 'traitbase-multi-'))
    after(async () => {
      for (const s of servers) await s.stop()
      await cleanup()
      rmSync(logDir, { recursive: true, force: true })
    })

    test('overlapping uploads through both at once, exact counts from both, one shared rate limit, idempotent retry through the other', async (t) => {
      assert.ok(existsSync(SERVER), `${SERVER} is missing: run "npm run build" first (npm test does)`)
      const noRedis = await redisSkipReason()
      if (noRedis !== undefined) return t.skip(noRedis)
      const db = await createTestDatabase(backend)
      if ('skip' in db) return t.skip(db.skip)
      cleanup = db.drop
      const store = await openStore(db.url)
      const key = await createTestKey(store, 'multi')
      const limitedKey = await createTestKey(store, 'limited')
      await store.setProjectRateLimit('limited', 10)
      await store.close()
      for (const name of ['a', 'b']) {
        const env = { DATABASE_URL: db.url, REDIS_URL, LOG_LEVEL: 'warn' }
        servers.push(await startServer({ entry: SERVER, env, logFile: join(logDir, `${name}.log`) }))
      }
      const [a, b] = servers.map((s) => s.baseUrl) as [string, string]
      assert.notEqual(a, b)

      // Overlapping uploads through both servers at once.
      const answers = await Promise.all(
        Array.from({ length: REQUESTS }, (_, r) =>
          call(r % 2 === 0 ? a : b, key, 'POST', '/v1/user/profiles', uploadOf(r)),
        ),
      )
      assert.deepEqual(
        answers.map((x) => x.status),
        Array(REQUESTS).fill(200),
      )

      // Final state: every user holds its plan and the marker of each of the 10 requests that wrote it.
      for (let u = 0; u < USERS; u++) {
        const expected: Record<string, string> = { plan: u % 2 === 0 ? 'pro' : 'free' }
        for (let r = 0; r < REQUESTS; r++)
          if ((((u - r * 5) % USERS) + USERS) % USERS < PER_REQUEST) expected[`w${r}`] = '1'
        const got = await call(u % 2 === 0 ? b : a, key, 'GET', `/v1/user/profiles/u${u}`)
        assert.equal(got.status, 200)
        assert.deepEqual(got.json.data?.attributes, Object.fromEntries(Object.entries(expected).sort()), `u${u}`)
      }

      // Exact segment counts from both processes.
      for (const base of [a, b]) {
        const count = async (where: unknown) =>
          (await call(base, key, 'POST', '/v1/user/segments/query', { where })).json.data?.count
        assert.equal(await count({ field: 'plan', op: 'eq', value: 'pro' }), 100, base)
        assert.equal(await count({ field: 'w3', op: 'eq', value: '1' }), PER_REQUEST, base)
        assert.equal(await count({ field: 'w0', op: 'exists' }), PER_REQUEST, base)
      }

      // One rate limit shared by both processes (the project's own 10 per minute, counted in Redis).
      const limited = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          call(i % 2 === 0 ? a : b, limitedKey, 'POST', '/v1/user/profiles', {
            field_name: ['user_id', 'n'],
            values: [[`l${i}`, String(i)]],
          }),
        ),
      )
      const statuses = limited.map((x) => x.status)
      assert.equal(statuses.filter((s) => s === 200).length, 10, String(statuses))
      assert.equal(statuses.filter((s) => s === 429).length, 20, String(statuses))
      for (const x of limited) {
        assert.equal(x.headers.get('ratelimit-policy'), '"per-key";q=10;w=60')
        if (x.status === 429) assert.ok(Number(x.headers.get('retry-after')) >= 1)
      }

      // An idempotent retry through the other process: replayed, not applied again.
      const keyed = { field_name: ['user_id', 'plan'], values: [['u1', 'vip']] }
      const first = await call(a, key, 'POST', '/v1/user/profiles', keyed, { 'idempotency-key': '"multi-1"' })
      assert.equal(first.status, 200)
      await call(a, key, 'POST', '/v1/user/profiles', { field_name: ['user_id', 'plan'], values: [['u1', 'later']] })
      const retry = await call(b, key, 'POST', '/v1/user/profiles', keyed, { 'idempotency-key': '"multi-1"' })
      assert.equal(retry.status, 200)
      assert.equal(retry.headers.get('idempotent-replayed'), 'true')
      assert.equal(retry.text, first.text)
      const u1 = await call(b, key, 'GET', '/v1/user/profiles/u1')
      assert.equal(u1.json.data?.attributes?.['plan'], 'later', 'the replay did not write "vip" again')
      const reused = await call(
        b,
        key,
        'POST',
        '/v1/user/profiles',
        { ...keyed, values: [['u1', 'x']] },
        { 'idempotency-key': '"multi-1"' },
      )
      assert.equal(reused.status, 422)
    })
  })
}
