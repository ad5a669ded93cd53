import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { generateApiKey } from '../storage/api-keys.js'
import { TOUCH_INTERVAL_MS } from './auth.js'
import { buildTestApp } from './test-app.js'

const BODY = '{"field_name":["user_id","a"],"values":[["u1","x"]]}'

describe('auth', () => {
  test('401 in the envelope, with WWW-Authenticate, for missing, malformed and unknown keys; nothing stored', async (t) => {
    const { app, key } = await buildTestApp(t)
    const good = await key('alpha')
    const unknown = /^Unknown or revoked API key: check the key, or create one with "traitbase keys create"$/
    const cases: [string | undefined, RegExp][] = [
      [undefined, /^Missing Authorization header/],
      ['', /^Missing Authorization header/],
      [`Basic ${good}`, /^Malformed Authorization header/],
      [`Bearer`, /^Malformed Authorization header/],
      [`Bearer ${good} extra`, /^Malformed Authorization header/],
      // A well-formed header whose token is merely not a key we know: unknown, not malformed.
      ['Bearer tbk_wrong', unknown],
      ['Bearer not-a-key', unknown],
      [`Bearer ${good.slice(0, -1)}`, unknown],
      [`Bearer ${generateApiKey().secret}`, unknown],
    ]
    for (const [authorization, msg] of cases) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
        payload: BODY,
      })
      assert.equal(res.statusCode, 401, String(authorization))
      const body = res.json() as { msg: string; timestamp: number }
      assert.deepEqual(Object.keys(body), ['msg', 'timestamp'])
      assert.match(body.msg, msg)
      assert.match(res.headers['www-authenticate'] as string, /^Bearer/)
      assert.ok(!res.body.includes(good), 'the key is never echoed')
    }
    const read = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer ${good}` },
    })
    assert.equal(read.statusCode, 404)
  })

  test('HEAD on a read route needs the key like GET does', async (t) => {
    const { app, key } = await buildTestApp(t)
    const k = await key('alpha')
    assert.equal((await app.inject({ method: 'HEAD', url: '/v1/user/profiles/x' })).statusCode, 401)
    const res = await app.inject({
      method: 'HEAD',
      url: '/v1/user/profiles/x',
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(res.statusCode, 404)
    assert.equal(res.body, '')
  })

  test('an empty user id in the path is a 404 (authenticated), never a match on another route', async (t) => {
    const { app, key } = await buildTestApp(t)
    const k = await key('alpha')
    const res = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/',
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(res.statusCode, 404)
    const del = await app.inject({
      method: 'DELETE',
      url: '/v1/user/profiles/',
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(del.statusCode, 404)
  })

  test('the Bearer scheme is case-insensitive (RFC 7235)', async (t) => {
    const { app, key } = await buildTestApp(t)
    const k = await key('alpha')
    const res = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/x',
      headers: { authorization: `bearer ${k}` },
    })
    assert.equal(res.statusCode, 404)
  })

  test('401 comes before body checks: an unauthenticated non-JSON body is a 401, not a 415', async (t) => {
    const { app } = await buildTestApp(t)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    })
    assert.equal(res.statusCode, 401)
  })

  test('403 when the key lacks the scope: a read-only key cannot upload or delete, a write-only key cannot read', async (t) => {
    const { app, key } = await buildTestApp(t)
    const ro = await key('alpha', ['profiles:read'])
    const wo = await key('alpha', ['profiles:write'])
    const up = (k: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        payload: BODY,
      })
    const denied = await up(ro)
    assert.equal(denied.statusCode, 403)
    assert.match((denied.json() as { msg: string }).msg, /lacks the "profiles:write" scope/)
    const del = await app.inject({
      method: 'DELETE',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer ${ro}` },
    })
    assert.equal(del.statusCode, 403)
    assert.equal((await up(wo)).statusCode, 200)
    const get = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer ${wo}` },
    })
    assert.equal(get.statusCode, 403)
    const ok = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer ${ro}` },
    })
    assert.equal(ok.statusCode, 200)
  })

  test('a revoked key is refused from the very next request on', async (t) => {
    const { app, store, key } = await buildTestApp(t)
    const k = await key('alpha')
    const get = () =>
      app.inject({ method: 'GET', url: '/v1/user/profiles/x', headers: { authorization: `Bearer ${k}` } })
    assert.equal((await get()).statusCode, 404)
    const project = await store.findProject('alpha')
    assert.ok(project)
    const [record] = await store.listKeys(project.id)
    assert.ok(record)
    assert.equal(await store.revokeKey(record.id), true)
    const res = await get()
    assert.equal(res.statusCode, 401)
    assert.match((res.json() as { msg: string }).msg, /revoked/)
  })

  test(`last_used_at is written at most once per ${TOUCH_INTERVAL_MS / 1000} s per key`, async (t) => {
    let ms = Date.parse('2026-01-01T00:00:00Z')
    const { app, store, key } = await buildTestApp(t, {}, () => ms)
    const k = await key('alpha')
    const project = await store.findProject('alpha')
    assert.ok(project)
    const lastUsed = async () => (await store.listKeys(project.id))[0]?.lastUsedAt ?? null
    const get = () =>
      app.inject({ method: 'GET', url: '/v1/user/profiles/x', headers: { authorization: `Bearer ${k}` } })
    assert.equal(await lastUsed(), null)
    await get()
    await new Promise((r) => setImmediate(r))
    assert.equal(await lastUsed(), '2026-01-01T00:00:00.000Z')
    ms += TOUCH_INTERVAL_MS - 1
    await get()
    await new Promise((r) => setImmediate(r))
    assert.equal(await lastUsed(), '2026-01-01T00:00:00.000Z', 'not rewritten within the interval')
    ms += 1
    await get()
    await new Promise((r) => setImmediate(r))
    assert.equal(await lastUsed(), '2026-01-01T00:01:00.000Z')
  })
})
