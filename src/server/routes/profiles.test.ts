import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { buildTestApp } from '../test-app.js'

/** The request body of spec §5, byte for byte as the spec prints it. */
const SPEC_BODY = `{
  "field_name": [
    "user_id",
    "watch_conan",
    "watch_attack_on_titan"
  ],
  "values": [
    ["abcd123", "yes", "no"],
    ["abcd456", "yes", "yes"],
    ["abcd789", "no", "no"]
  ]
}`

const FIXED_MS = 1_684_155_980_123

function upload(app: FastifyInstance, key: string, body: unknown, extra: Partial<InjectOptions> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/user/profiles',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  })
}

async function read(app: FastifyInstance, key: string, userId: string) {
  const res = await app.inject({
    method: 'GET',
    url: `/v1/user/profiles/${encodeURIComponent(userId)}`,
    headers: { authorization: `Bearer ${key}` },
  })
  return { status: res.statusCode, body: res.json() as Record<string, unknown> & { data?: ProfileData } }
}

interface ProfileData {
  user_id: string
  attributes: Record<string, string>
  created_at: string
  updated_at: string
}

async function attributesOf(app: FastifyInstance, key: string, userId: string): Promise<Record<string, string>> {
  const { status, body } = await read(app, key, userId)
  assert.equal(status, 200, `GET ${userId}: ${JSON.stringify(body)}`)
  assert.ok(body.data)
  return body.data.attributes
}

async function setup(t: TestContext) {
  const ctx = await buildTestApp(t, {}, () => FIXED_MS)
  return { ...ctx, k: await ctx.key('alpha') }
}

describe('POST /v1/user/profiles', () => {
  test('the spec example: 200 and exactly {"msg":"Success","timestamp":<unix s>}', async (t) => {
    const { app, k } = await setup(t)
    const res = await upload(app, k, SPEC_BODY)
    assert.equal(res.statusCode, 200)
    assert.equal(res.body, '{"msg":"Success","timestamp":1684155980}')
    assert.match(String(res.headers['content-type']), /^application\/json/)
    assert.deepEqual(await attributesOf(app, k, 'abcd456'), { watch_conan: 'yes', watch_attack_on_titan: 'yes' })
    assert.deepEqual(await attributesOf(app, k, 'abcd789'), { watch_conan: 'no', watch_attack_on_titan: 'no' })
  })

  test('update policy (spec §4): existing attributes updated, new ones added, others untouched, unknown users created', async (t) => {
    const { app, k } = await setup(t)
    assert.equal(
      (await upload(app, k, { field_name: ['user_id', 'a', 'b'], values: [['u1', '1', '2']] })).statusCode,
      200,
    )
    const r = await upload(app, k, {
      field_name: ['user_id', 'b', 'c'],
      values: [
        ['u1', 'B', 'C'],
        ['u2', 'x', 'y'],
      ],
    })
    assert.equal(r.statusCode, 200)
    assert.deepEqual(await attributesOf(app, k, 'u1'), { a: '1', b: 'B', c: 'C' })
    assert.deepEqual(await attributesOf(app, k, 'u2'), { b: 'x', c: 'y' })
  })

  test('"" clears an attribute and never creates one; numbers and booleans read back as text', async (t) => {
    const { app, k } = await setup(t)
    await upload(app, k, { field_name: ['user_id', 'a', 'b', 'n', 't'], values: [['u1', 'x', 'y', 3.5, true]] })
    await upload(app, k, { field_name: ['user_id', 'a', 'z'], values: [['u1', '', '']] })
    assert.deepEqual(await attributesOf(app, k, 'u1'), { b: 'y', n: '3.5', t: 'true' })
  })

  test('repeated user_id rows in one request: last value wins per attribute', async (t) => {
    const { app, k } = await setup(t)
    const res = await upload(app, k, {
      field_name: ['user_id', 'a', 'b'],
      values: [
        ['u1', '1', '1'],
        ['u1', '2', ''],
        ['u1', '3', 'kept'],
      ],
    })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(await attributesOf(app, k, 'u1'), { a: '3', b: 'kept' })
  })

  test('atomic: one bad row in a request stores nothing of it', async (t) => {
    const { app, k } = await setup(t)
    await upload(app, k, { field_name: ['user_id', 'a'], values: [['u1', 'before']] })
    const res = await upload(app, k, {
      field_name: ['user_id', 'a'],
      values: [
        ['u1', 'after'],
        ['u2', 'new'],
        ['u3', 'x'.repeat(129)],
      ],
    })
    assert.equal(res.statusCode, 400)
    const body = res.json() as { msg: string; errors: { path: string }[] }
    assert.equal(body.msg, 'values[2][1]: field "a": value is longer than 128 characters')
    assert.equal(body.errors[0]?.path, 'values[2][1]')
    assert.deepEqual(await attributesOf(app, k, 'u1'), { a: 'before' })
    assert.equal((await read(app, k, 'u2')).status, 404)
  })

  test('a 400 names the first problem and lists every one; nothing stored', async (t) => {
    const { app, k } = await setup(t)
    const res = await upload(app, k, { field_name: ['watch'], values: [['x']], extra: true })
    assert.equal(res.statusCode, 400)
    const body = res.json() as { msg: string; timestamp: number; errors: { code: string; path: string }[] }
    assert.equal(body.timestamp, 1684155980)
    assert.match(body.msg, /^extra: unknown field/)
    assert.deepEqual(
      body.errors.map((e) => e.path),
      ['extra', 'field_name'],
    )
  })

  test('a request without a body is a 400 that says a body is required', async (t) => {
    const { app, k } = await setup(t)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(res.statusCode, 400)
    assert.match((res.json() as { msg: string }).msg, /body is required/)
  })

  test('a body with more JSON values than any request needs is a 400 before it is parsed', async (t) => {
    const { app, k } = await setup(t)
    const keys = '{' + Array.from({ length: 250_000 }, (_, i) => `"k${i}":1`).join(',') + '}'
    const deep = '[' + Array(300_000).fill('[1]').join(',') + ']'
    for (const body of [keys, deep]) {
      const res = await upload(app, k, body)
      assert.equal(res.statusCode, 400)
      assert.match(res.json().msg, /more than 200000 JSON values/)
    }
  })

  test('duplicate JSON keys are refused, not silently resolved', async (t) => {
    const { app, k } = await setup(t)
    const res = await upload(app, k, '{"field_name":["user_id"],"values":[["a"]],"values":[["b"]]}')
    assert.equal(res.statusCode, 400)
    assert.equal((res.json() as { msg: string }).msg, 'Duplicate key "values" in a JSON object')
    assert.equal((await read(app, k, 'a')).status, 404)
    assert.equal((await read(app, k, 'b')).status, 404)
  })

  test('__proto__, constructor and friends round-trip as field names and user ids', async (t) => {
    const { app, k } = await setup(t)
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty']
    const res = await upload(app, k, {
      field_name: ['user_id', ...names],
      values: names.map((n) => [n, 'p', 'c', 't', 'h']),
    })
    assert.equal(res.statusCode, 200)
    for (const id of names) {
      const { body } = await read(app, k, id)
      assert.equal(body.data?.user_id, id)
      assert.deepEqual(
        JSON.parse(JSON.stringify(body.data?.attributes)),
        JSON.parse('{"__proto__":"p","constructor":"c","toString":"t","hasOwnProperty":"h"}'),
      )
    }
  })
})

describe('GET and DELETE /v1/user/profiles/:user_id', () => {
  test('GET answers the profile with ISO-8601 timestamps; created_at stays, updated_at moves', async (t) => {
    let ms = FIXED_MS
    const ctx = await buildTestApp(t, {}, () => ms)
    const k = await ctx.key('alpha')
    await upload(ctx.app, k, { field_name: ['user_id', 'a'], values: [['u1', '1']] })
    const first = await read(ctx.app, k, 'u1')
    assert.equal(first.status, 200)
    assert.deepEqual(Object.keys(first.body), ['msg', 'timestamp', 'data'])
    assert.equal(first.body['msg'], 'Success')
    assert.equal(first.body['timestamp'], 1684155980)
    const d = first.body.data
    assert.ok(d)
    assert.deepEqual(Object.keys(d), ['user_id', 'attributes', 'created_at', 'updated_at'])
    assert.match(d.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    ms += 5000
    await new Promise((r) => setTimeout(r, 5))
    await upload(ctx.app, k, { field_name: ['user_id', 'a'], values: [['u1', '2']] })
    const second = await read(ctx.app, k, 'u1')
    assert.equal(second.body.data?.created_at, d.created_at)
    assert.ok((second.body.data?.updated_at ?? '') >= d.updated_at)
  })

  test('user ids with /, %, spaces, unicode, emoji, quotes and ? work URL-encoded', async (t) => {
    const { app, k } = await setup(t)
    const ids = ['a/b', '100%', 'with space', 'ユーザー', '😀x', 'q?x=1#h', '"\'<>', '...', 'a+b', '%2F']
    const res = await upload(app, k, { field_name: ['user_id', 'v'], values: ids.map((id, i) => [id, String(i)]) })
    assert.equal(res.statusCode, 200)
    for (const [i, id] of ids.entries()) {
      const { status, body } = await read(app, k, id)
      assert.equal(status, 200, `GET ${JSON.stringify(id)}: ${JSON.stringify(body)}`)
      assert.equal(body.data?.user_id, id)
      assert.deepEqual(body.data?.attributes, { v: String(i) })
    }
  })

  test('a user id of 128 emoji, fully percent-encoded, is found', async (t) => {
    const { app, k } = await setup(t)
    const id = '😀'.repeat(128)
    await upload(app, k, { field_name: ['user_id'], values: [[id]] })
    assert.equal((await read(app, k, id)).status, 200)
  })

  test('an unknown user is a 404 in the envelope', async (t) => {
    const { app, k } = await setup(t)
    const { status, body } = await read(app, k, 'nobody')
    assert.equal(status, 404)
    assert.deepEqual(Object.keys(body), ['msg', 'timestamp'])
    assert.match(String(body['msg']), /No user/)
  })

  test('a path parameter longer than any user id is a 404, not a 414 or 500', async (t) => {
    const { app, k } = await setup(t)
    const res = await app.inject({
      method: 'GET',
      url: `/v1/user/profiles/${'x'.repeat(5000)}`,
      headers: { authorization: `Bearer ${k}` },
    })
    assert.equal(res.statusCode, 404)
    assert.deepEqual(Object.keys(res.json() as object), ['msg', 'timestamp'])
  })

  test('DELETE erases the user and its attributes; a second DELETE is a 404', async (t) => {
    const { app, k } = await setup(t)
    await upload(app, k, {
      field_name: ['user_id', 'a'],
      values: [
        ['u/1', '1'],
        ['u2', '2'],
      ],
    })
    const del = () =>
      app.inject({ method: 'DELETE', url: '/v1/user/profiles/u%2F1', headers: { authorization: `Bearer ${k}` } })
    const first = await del()
    assert.equal(first.statusCode, 200)
    assert.equal(first.body, '{"msg":"Success","timestamp":1684155980}')
    assert.equal((await read(app, k, 'u/1')).status, 404)
    assert.equal((await del()).statusCode, 404)
    assert.deepEqual(await attributesOf(app, k, 'u2'), { a: '2' })
    await upload(app, k, { field_name: ['user_id', 'b'], values: [['u/1', 'new']] })
    assert.deepEqual(await attributesOf(app, k, 'u/1'), { b: 'new' }, 'a re-created user starts empty')
  })
})

describe('GET and DELETE /v1/user/profiles?user_id=', () => {
  test('reach every id by query string, including . and .. which no path can carry', async (t) => {
    const { app, k } = await setup(t)
    const ids = ['.', '..', 'a/b', '__proto__', 'x&y=z', '🎉']
    await upload(app, k, { field_name: ['user_id', 'n'], values: ids.map((id, i) => [id, String(i)]) })
    const byQuery = (method: 'GET' | 'DELETE', id: string) =>
      app.inject({
        method,
        url: `/v1/user/profiles?user_id=${encodeURIComponent(id)}`,
        headers: { authorization: `Bearer ${k}` },
      })
    for (const [i, id] of ids.entries()) {
      const res = await byQuery('GET', id)
      assert.equal(res.statusCode, 200, `GET ?user_id=${id}: ${res.body}`)
      const data = (res.json() as { data: ProfileData }).data
      assert.equal(data.user_id, id)
      assert.deepEqual({ ...data.attributes }, { n: String(i) })
    }
    assert.equal((await byQuery('DELETE', '..')).statusCode, 200)
    assert.equal((await byQuery('GET', '..')).statusCode, 404)
    assert.equal((await byQuery('DELETE', '..')).statusCode, 404)
    assert.equal((await byQuery('GET', '.')).statusCode, 200, 'only .. was erased')
  })

  test('the query is decoded strictly, like the path: a bad escape is a 400, never a literal id', async (t) => {
    const { app, k } = await setup(t)
    await upload(app, k, {
      field_name: ['user_id', 'n'],
      values: [
        ['%zz', '1'],
        ['a b', '2'],
        ['a+b', '3'],
      ],
    })
    const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${k}` } })
    for (const bad of ['%zz', '%FF', '%25FF%', 'a%2']) {
      const res = await get(`/v1/user/profiles?user_id=${bad}`)
      assert.equal(res.statusCode, 400, bad)
      assert.match(res.json().msg, /invalid percent-encoding/)
      const del = await app.inject({
        method: 'DELETE',
        url: `/v1/user/profiles?user_id=${bad}`,
        headers: { authorization: `Bearer ${k}` },
      })
      assert.equal(del.statusCode, 400, `DELETE ${bad}`)
    }
    assert.equal((await get('/v1/user/profiles?user_id=%25zz')).json().data.user_id, '%zz', 'nothing was deleted')
    assert.equal((await get('/v1/user/profiles?user_id=a+b')).json().data.user_id, 'a b')
    assert.equal((await get('/v1/user/profiles?user_id=a%2Bb')).json().data.user_id, 'a+b')
    const both = await get('/v1/user/profiles/a%20b?user_id=a%2Bb')
    assert.equal(both.statusCode, 400)
    assert.match(both.json().msg, /in the path or in the user_id query parameter, not both/)
  })

  test('a missing, empty or repeated user_id is a 400 that says how to ask; the read scope is still required', async (t) => {
    const { app, k, key } = await setup(t)
    for (const url of ['/v1/user/profiles', '/v1/user/profiles?user_id=', '/v1/user/profiles?user_id=a&user_id=b']) {
      for (const method of ['GET', 'DELETE'] as const) {
        const res = await app.inject({ method, url, headers: { authorization: `Bearer ${k}` } })
        assert.equal(res.statusCode, 400, `${method} ${url}`)
        assert.match((res.json() as { msg: string }).msg, /user_id query parameter/)
      }
    }
    const writeOnly = await key('alpha', ['profiles:write'])
    const res = await app.inject({
      method: 'GET',
      url: '/v1/user/profiles?user_id=u1',
      headers: { authorization: `Bearer ${writeOnly}` },
    })
    assert.equal(res.statusCode, 403)
    const anonymous = await app.inject({ method: 'DELETE', url: '/v1/user/profiles?user_id=u1' })
    assert.equal(anonymous.statusCode, 401)
  })
})

test('GET prints attributes in code point order, whatever order they were uploaded in', async (t) => {
  const { app, k } = await setup(t)
  await upload(app, k, {
    field_name: ['user_id', 'zeta', 'Alpha', 'beta', '😀', 'é'],
    values: [['u', '1', '2', '3', '4', '5']],
  })
  const res = await app.inject({ method: 'GET', url: '/v1/user/profiles/u', headers: { authorization: `Bearer ${k}` } })
  assert.match(res.body, /"attributes":\{"Alpha":"2","beta":"3","zeta":"1","é":"5","😀":"4"\}/)
})

describe('isolation between projects', () => {
  test('the same user_id in two projects is two users; another project cannot read or delete it', async (t) => {
    const { app, key } = await buildTestApp(t)
    const a = await key('alpha')
    const b = await key('beta')
    await upload(app, a, {
      field_name: ['user_id', 'plan'],
      values: [
        ['shared', 'gold'],
        ['only-a', 'x'],
      ],
    })
    await upload(app, b, { field_name: ['user_id', 'tier'], values: [['shared', '1']] })
    assert.deepEqual(await attributesOf(app, a, 'shared'), { plan: 'gold' })
    assert.deepEqual(await attributesOf(app, b, 'shared'), { tier: '1' })
    assert.equal((await read(app, b, 'only-a')).status, 404)
    const del = await app.inject({
      method: 'DELETE',
      url: '/v1/user/profiles/only-a',
      headers: { authorization: `Bearer ${b}` },
    })
    assert.equal(del.statusCode, 404)
    assert.deepEqual(await attributesOf(app, a, 'only-a'), { plan: 'x' })
  })
})
