import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { openStore } from '../storage/open-store.js'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { createMetrics } from './metrics.js'
import { buildTestApp, createTestKey } from './test-app.js'
import { redisSkipReason, TEST_REDIS_URL as REDIS_URL } from './test-redis.js'

const body = { field_name: ['user_id', 'plan'], values: [['u1', 'pro']] }

test('RATE_LIMIT: per key, 429 in the envelope with Retry-After; other keys, health and 401s are not counted', async (t) => {
  const { app, key } = await buildTestApp(t, { RATE_LIMIT: '2' })
  const [a, b] = [await key('p'), await key('p')]
  const post = (k: string) =>
    app.inject({ method: 'POST', url: '/v1/user/profiles', headers: { authorization: `Bearer ${k}` }, payload: body })

  for (let i = 0; i < 3; i++) {
    const bad = await app.inject({ method: 'POST', url: '/v1/user/profiles', payload: body })
    assert.equal(bad.statusCode, 401)
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  }
  assert.equal((await post(a)).statusCode, 200)
  assert.equal((await post(a)).statusCode, 200)
  const limited = await post(a)
  assert.equal(limited.statusCode, 429)
  const json = limited.json<{ msg: string; timestamp: number }>()
  assert.deepEqual(Object.keys(json).sort(), ['msg', 'timestamp'])
  assert.match(json.msg, /Rate limit of 2 requests per minute/)
  assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After in seconds')
  assert.equal((await post(b)).statusCode, 200, 'another key has its own budget')
  // Throttled before the body is read: a broken or oversized body from this key is a 429 too.
  for (const payload of ['{not json', 'x'.repeat(9 * 1024 * 1024)]) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { authorization: `Bearer ${a}`, 'content-type': 'application/json' },
      payload,
    })
    assert.equal(res.statusCode, 429)
  }
})

test('RATE_LIMIT is off by default and must be a non-negative integer', async (t) => {
  assert.equal(loadConfig({}).rateLimitPerMinute, 0)
  assert.throws(() => loadConfig({ RATE_LIMIT: '-1' }), /RATE_LIMIT must be an integer/)
  const { app, key } = await buildTestApp(t)
  const k = await key('p')
  for (let i = 0; i < 30; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { authorization: `Bearer ${k}` },
      payload: body,
    })
    assert.equal(res.statusCode, 200)
  }
})

function postWith(app: FastifyInstance, k: string) {
  return app.inject({
    method: 'POST',
    url: '/v1/user/profiles',
    headers: { authorization: `Bearer ${k}` },
    payload: body,
  })
}

test('RateLimit-Policy and RateLimit fields (IETF draft syntax) on /v1 answers; the 429 carries r=0 and Retry-After', async (t) => {
  const { app, key } = await buildTestApp(t, { RATE_LIMIT: '3' })
  const k = await key('p')
  const remaining: string[] = []
  for (let i = 0; i < 3; i++) {
    const res = await postWith(app, k)
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['ratelimit-policy'], '"per-key";q=3;w=60')
    const m = /^"per-key";r=(\d+);t=(\d+)$/.exec(String(res.headers['ratelimit']))
    assert.ok(m, String(res.headers['ratelimit']))
    assert.ok(Number(m[2]) >= 1 && Number(m[2]) <= 60)
    remaining.push(m[1] as string)
  }
  assert.deepEqual(remaining, ['2', '1', '0'])
  const limited = await postWith(app, k)
  assert.equal(limited.statusCode, 429)
  assert.match(String(limited.headers['ratelimit']), /^"per-key";r=0;t=\d+$/)
  assert.ok(Number(limited.headers['retry-after']) >= 1)
  const read = await app.inject({
    method: 'GET',
    url: '/v1/user/profiles/u1',
    headers: { authorization: `Bearer ${k}` },
  })
  assert.equal(read.statusCode, 429, 'reads share the key budget')
  assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).headers['ratelimit'], undefined)
})

test('a project limit (store.setProjectRateLimit, as the CLI does) replaces RATE_LIMIT; 0 = unlimited; null = default', async (t) => {
  const { app, store, key } = await buildTestApp(t)
  const [k, free] = [await key('limited'), await key('other')]
  await store.setProjectRateLimit('limited', 2)
  assert.equal((await postWith(app, k)).statusCode, 200)
  assert.equal((await postWith(app, k)).statusCode, 200)
  assert.equal((await postWith(app, k)).statusCode, 429, 'limited although RATE_LIMIT is off')
  for (let i = 0; i < 5; i++) {
    const res = await postWith(app, free)
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['ratelimit-policy'], undefined, 'no policy, no fields')
  }
  const { app: app2, store: store2, key: key2 } = await buildTestApp(t, { RATE_LIMIT: '1' })
  const vip = await key2('vip')
  await store2.setProjectRateLimit('vip', 0)
  for (let i = 0; i < 4; i++) assert.equal((await postWith(app2, vip)).statusCode, 200, 'project limit 0: unlimited')
  await store2.setProjectRateLimit('vip', null)
  assert.equal((await postWith(app2, vip)).statusCode, 200)
  assert.equal((await postWith(app2, vip)).statusCode, 429, 'back to RATE_LIMIT=1')
})

test('REDIS_URL: two servers share one budget per key (the sum respects the limit)', async (t) => {
  const skip = await redisSkipReason()
  if (skip !== undefined) return t.skip(skip)
  const first = await buildTestApp(t, { RATE_LIMIT: '5', REDIS_URL })
  const k = await first.key('shared')
  // A second server process on the same database: its own app and limiter, the same Redis.
  const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT: '5', REDIS_URL })
  const second = buildApp({ store: first.store, config, metrics: createMetrics({ defaultMetrics: false }) })
  t.after(() => second.close())
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await postWith(i % 2 === 0 ? first.app : second, k)).statusCode)
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429])
})

test('Redis down: requests pass (fail open), never a 500, and one warning for the outage, not one per request', async (t) => {
  const lines: string[] = []
  const config = loadConfig({ LOG_LEVEL: 'warn', RATE_LIMIT: '2', REDIS_URL: 'redis://127.0.0.1:1' })
  const store = await openStore('sqlite::memory:')
  const app = buildApp({
    store,
    config,
    metrics: createMetrics({ defaultMetrics: false }),
    logStream: { write: (line: string) => lines.push(line) },
  })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  const k = await createTestKey(store, 'p')
  for (let i = 0; i < 6; i++) {
    const res = await postWith(app, k)
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['ratelimit'], undefined, 'no count to report')
  }
  const warnings = lines.filter((l) => l.includes('Redis unavailable'))
  assert.equal(warnings.length, 1, lines.join('\n'))
})
