import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from './config.js'
import { buildTestApp } from './test-app.js'

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
