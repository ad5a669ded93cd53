import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { ERROR_STATUS, TraitbaseError, type ErrorCode } from '../core/errors.js'
import { describeError } from './errors.js'
import { buildTestApp } from './test-app.js'

const README = new URL('../../README.md', import.meta.url)

/** The rows of the README's `## Errors` table: code → status. */
function readmeErrorTable(): Map<string, number> {
  const text = readFileSync(README, 'utf8')
  const start = text.indexOf('\n## Errors\n')
  assert.ok(start >= 0, 'README has a "## Errors" section')
  const end = text.indexOf('\n## ', start + 1)
  const section = text.slice(start, end === -1 ? undefined : end)
  const rows = new Map<string, number>()
  for (const m of section.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)) rows.set(m[1] as string, Number(m[2]))
  return rows
}

describe('the error table', () => {
  test('every ErrorCode appears in the README "## Errors" table with its status, and nothing else does', () => {
    const table = readmeErrorTable()
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      assert.equal(table.get(code), status, `README row for ${code}`)
    }
    assert.deepEqual([...table.keys()].sort(), Object.keys(ERROR_STATUS).sort())
  })
})

describe('describeError', () => {
  test('TraitbaseError keeps its status and message below 500, hides it from 500 on', () => {
    for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
      const d = describeError(new TraitbaseError(code, 'secret detail'), 1024)
      assert.equal(d.status, ERROR_STATUS[code])
      if (d.status >= 500) assert.ok(!d.msg.includes('secret'), code)
      else assert.equal(d.msg, 'secret detail')
    }
  })

  test('Fastify client errors map to our statuses; anything unknown is a 500 without detail', () => {
    const fst = (code: string, statusCode: number) => Object.assign(new Error('fastify says'), { code, statusCode })
    assert.deepEqual(describeError(fst('FST_ERR_CTP_BODY_TOO_LARGE', 413), 1024), {
      status: 413,
      msg: 'Request body is larger than the limit of 1024 bytes',
    })
    assert.equal(describeError(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415), 1).status, 415)
    assert.equal(describeError(fst('FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400), 1).status, 400)
    assert.deepEqual(describeError(fst('FST_ERR_SOMETHING_NEW', 400), 1), { status: 400, msg: 'Bad Request' })
    assert.deepEqual(describeError(Object.assign(new Error('aborted'), { statusCode: 408 }), 1), {
      status: 408,
      msg: 'Request Timeout',
    })
    assert.equal(describeError(Object.assign(new Error('teapot'), { statusCode: 418 }), 1).status, 400)
    assert.equal(describeError(Object.assign(new Error('x'), { statusCode: 502 }), 1).status, 500)
    assert.deepEqual(describeError(new TypeError('x is undefined at /srv/app.js:1'), 1), {
      status: 500,
      msg: 'Internal server error',
    })
    assert.equal(describeError('a string', 1).status, 500)
  })
})

describe('errors over HTTP', () => {
  test('404 for an unknown path, in the envelope, without echoing the query string', async (t) => {
    const { app } = await buildTestApp(t)
    const res = await app.inject({ method: 'GET', url: '/v2/nothing?key=tbk_secret' })
    assert.equal(res.statusCode, 404)
    const body = res.json() as { msg: string; timestamp: number }
    assert.deepEqual(Object.keys(body), ['msg', 'timestamp'])
    assert.equal(body.msg, 'Not found: no route for GET /v2/nothing')
    assert.equal(typeof body.timestamp, 'number')
  })

  test('405 with Allow for every wrong method on a known path, before auth and before the body', async (t) => {
    const { app } = await buildTestApp(t)
    const cases: [string, string[], string][] = [
      ['/v1/user/profiles', ['PUT', 'PATCH', 'OPTIONS', 'TRACE'], 'GET, HEAD, POST, DELETE'],
      ['/v1/user/profiles/u1', ['POST', 'PUT', 'PATCH', 'OPTIONS'], 'GET, HEAD, DELETE'],
      ['/healthz', ['POST', 'DELETE'], 'GET, HEAD'],
    ]
    for (const [url, methods, allow] of cases) {
      for (const method of methods) {
        const res = await app.inject({
          method: method as 'GET',
          url,
          headers: { 'content-type': 'text/plain' },
          ...(method === 'GET' || method === 'HEAD' ? {} : { payload: 'x'.repeat(100) }),
        })
        assert.equal(res.statusCode, 405, `${method} ${url}`)
        assert.equal(res.headers['allow'], allow)
        if (method !== 'HEAD')
          assert.match((res.json() as { msg: string }).msg, new RegExp(`^Method ${method} is not allowed`))
      }
    }
  })

  test('413 over BODY_LIMIT and 415 for other content types, in the envelope', async (t) => {
    const { app, key } = await buildTestApp(t, { BODY_LIMIT: '2KiB' })
    const k = await key('alpha')
    const post = (type: string, payload: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { authorization: `Bearer ${k}`, 'content-type': type },
        payload,
      })
    const big = await post(
      'application/json',
      JSON.stringify({ field_name: ['user_id'], values: [['x'.repeat(3000)]] }),
    )
    assert.equal(big.statusCode, 413)
    assert.deepEqual(big.json(), {
      msg: 'Request body is larger than the limit of 2048 bytes',
      timestamp: (big.json() as { timestamp: number }).timestamp,
    })
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await post(type, '{}')
      assert.equal(res.statusCode, 415, type)
      assert.match((res.json() as { msg: string }).msg, /application\/json/)
    }
    const latin1 = await post('application/json; charset=latin1', '{}')
    assert.equal(latin1.statusCode, 415)
    assert.match((latin1.json() as { msg: string }).msg, /charset "latin1"/)
    const utf8 = await post('application/json; charset=UTF-8', '{"field_name":["user_id"],"values":[["u"]]}')
    assert.equal(utf8.statusCode, 200)
  })

  test('a fault of ours is a 500 whose body hides the cause; /healthz says 503', async (t) => {
    const { app, store, key } = await buildTestApp(t)
    const k = await key('alpha')
    await store.close()
    const res = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/u1',
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(res.statusCode, 500)
    const body = res.json() as { msg: string }
    assert.deepEqual(Object.keys(body), ['msg', 'timestamp'])
    assert.equal(body.msg, 'Internal server error')
    const health = await app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(health.statusCode, 503)
    assert.equal((health.json() as { msg: string }).msg, 'Database unavailable')
  })
})
