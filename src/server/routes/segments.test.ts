import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { request, type IncomingMessage } from 'node:http'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { buildTestApp } from '../test-app.js'
import { csvField } from './segments.js'

const FIXED_MS = 1_700_000_000_000

function call(
  app: FastifyInstance,
  key: string,
  method: InjectOptions['method'],
  url: string,
  body?: unknown,
  headers = {},
) {
  return app.inject({
    method,
    url,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
}

async function setup(t: TestContext) {
  const ctx = await buildTestApp(t, {}, () => FIXED_MS)
  const k = await ctx.key('alpha')
  const upload = await call(ctx.app, k, 'POST', '/v1/user/profiles', {
    field_name: ['user_id', 'plan', 'ltv', 'email', 'note'],
    values: [
      ['u1', 'pro', 12.5, 'ann@example.com', 'a,"b"'],
      ['u2', 'free', 3, 'bob@example.org', ''],
      ['u3', 'free', '', 'cy@example.com', ' lead'],
      ['u4', '', 'n/a', '', 'x\ny'],
    ],
  })
  assert.equal(upload.statusCode, 200, upload.body)
  return { ...ctx, k }
}

const query = (app: FastifyInstance, k: string, body: unknown) => call(app, k, 'POST', '/v1/user/segments/query', body)

describe('POST /v1/user/segments/query', () => {
  test('count, first page and a cursor walk', async (t) => {
    const { app, k } = await setup(t)
    const first = await query(app, k, { where: { field: 'plan', op: 'exists' }, limit: 2 })
    assert.equal(first.statusCode, 200)
    const body = first.json()
    assert.deepEqual(Object.keys(body), ['msg', 'timestamp', 'data'])
    assert.equal(body.msg, 'Success')
    assert.equal(body.timestamp, FIXED_MS / 1000)
    assert.deepEqual(body.data.user_ids, ['u1', 'u2'])
    assert.equal(body.data.count, 3)
    assert.equal(typeof body.data.next_cursor, 'string')
    const second = await query(app, k, {
      where: { field: 'plan', op: 'exists' },
      limit: 2,
      cursor: body.data.next_cursor,
    })
    assert.deepEqual(second.json().data, { count: 3, user_ids: ['u3'], next_cursor: null })
    // The cursor is bound to its project and condition: anywhere else it is a 400, not a silent skip.
    const elsewhere = await query(app, k, { where: { field: 'ltv', op: 'exists' }, cursor: body.data.next_cursor })
    assert.equal(elsewhere.statusCode, 400)
    assert.match(elsewhere.json().msg, /^cursor: belongs to another query or project/)
    const respelled = await query(app, k, {
      where: { all: [{ field: 'plan', op: 'exists' }] },
      cursor: body.data.next_cursor,
    })
    assert.equal(respelled.statusCode, 400)
  })

  test('sees an upload acknowledged just before', async (t) => {
    const { app, k } = await setup(t)
    const where = { field: 'plan', op: 'eq', value: 'pro' }
    assert.equal((await query(app, k, { where })).json().data.count, 1)
    await call(app, k, 'POST', '/v1/user/profiles', {
      field_name: ['user_id', 'plan'],
      values: [
        ['u9', 'pro'],
        ['u1', ''],
      ],
    })
    assert.deepEqual((await query(app, k, { where })).json().data, { count: 1, user_ids: ['u9'], next_cursor: null })
  })

  test('numeric, neq and not semantics over HTTP', async (t) => {
    const { app, k } = await setup(t)
    const ids = async (where: unknown) => (await query(app, k, { where })).json().data.user_ids
    assert.deepEqual(await ids({ field: 'ltv', op: 'gte', value: 3 }), ['u1', 'u2'])
    assert.deepEqual(await ids({ field: 'plan', op: 'neq', value: 'pro' }), ['u2', 'u3'])
    assert.deepEqual(await ids({ not: { field: 'plan', op: 'eq', value: 'pro' } }), ['u2', 'u3', 'u4'])
  })

  test('a malformed condition is a 400 naming the place; nothing else leaks', async (t) => {
    const { app, k } = await setup(t)
    const res = await query(app, k, {
      where: { all: [{ field: 'a', op: 'eq', value: 'x' }, {}, { field: 'a', op: 'like' }] },
    })
    assert.equal(res.statusCode, 400)
    const body = res.json()
    assert.match(body.msg, /^where\.all\[1\]/)
    assert.ok(body.errors.some((e: { path: string }) => e.path === 'where.all[2].op'))
    assert.ok(!res.body.includes('    at '), 'no stack trace')
    // NUL cannot be stored, so no condition may carry it; it must never reach SQL (a 500 there).
    for (const where of [
      { field: 'plan', op: 'eq', value: 'a\u0000b' },
      { field: 'p\u0000lan', op: 'exists' },
      { field: 'user_id', op: 'in', value: ['\u0000'] },
    ]) {
      const r = await query(app, k, { where })
      assert.equal(r.statusCode, 400, JSON.stringify(where))
      assert.match(r.json().msg, /U\+0000/)
      const exported = await call(app, k, 'POST', '/v1/user/segments/export', { where })
      assert.equal(exported.statusCode, 400)
      const saved = await call(app, k, 'POST', '/v1/user/segments', { name: 'nul', where })
      assert.equal(saved.statusCode, 400)
    }
    assert.equal(
      (await call(app, k, 'GET', '/v1/user/segments')).json().data.segments.length,
      0,
      'nothing saved by the refused requests',
    )
    for (const bad of [
      { where: { field: 'a', op: 'exists' }, cursor: 'not-a-cursor' },
      { where: { field: 'a', op: 'exists' }, limit: 0 },
      [],
      'x',
    ]) {
      const r = await query(app, k, bad)
      assert.equal(r.statusCode, 400, JSON.stringify(bad))
    }
  })

  test('auth: 401 without a key, 403 without profiles:read; 405 for other methods', async (t) => {
    const ctx = await setup(t)
    const writeOnly = await ctx.key('alpha', ['profiles:write'])
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/v1/user/segments/query',
      payload: { where: { all: [] } },
    })
    assert.equal(res.statusCode, 401)
    assert.equal((await query(ctx.app, writeOnly, { where: { all: [] } })).statusCode, 403)
    assert.equal((await call(ctx.app, ctx.k, 'GET', '/v1/user/segments/query')).statusCode, 405)
  })

  test('isolation: another project’s key sees only its own users', async (t) => {
    const ctx = await setup(t)
    const other = await ctx.key('beta')
    const res = await query(ctx.app, other, { where: { all: [] } })
    assert.deepEqual(res.json().data, { count: 0, user_ids: [], next_cursor: null })
  })
})

describe('saved segments', () => {
  test('create, list with counts, get, members, update, delete', async (t) => {
    const { app, k } = await setup(t)
    const created = await call(app, k, 'POST', '/v1/user/segments', {
      name: 'Free',
      where: { field: 'plan', op: 'eq', value: 'free' },
    })
    assert.equal(created.statusCode, 201, created.body)
    const seg = created.json().data
    assert.match(seg.id, /^seg_/)
    assert.equal(seg.count, 2)
    assert.deepEqual(seg.where, { field: 'plan', op: 'eq', value: 'free' })

    const list = (await call(app, k, 'GET', '/v1/user/segments')).json().data.segments
    assert.deepEqual(
      list.map((s: { id: string; count: number }) => [s.id, s.count]),
      [[seg.id, 2]],
    )
    assert.equal((await call(app, k, 'GET', `/v1/user/segments/${seg.id}`)).json().data.name, 'Free')

    const p1 = (await call(app, k, 'GET', `/v1/user/segments/${seg.id}/users?limit=1`)).json().data
    assert.deepEqual(p1.user_ids, ['u2'])
    const p2 = (await call(app, k, 'GET', `/v1/user/segments/${seg.id}/users?limit=1&cursor=${p1.next_cursor}`)).json()
      .data
    assert.deepEqual(p2, { count: 2, user_ids: ['u3'], next_cursor: null })

    const updated = await call(app, k, 'PUT', `/v1/user/segments/${seg.id}`, {
      name: 'Pro',
      where: { field: 'plan', op: 'eq', value: 'pro' },
    })
    assert.equal(updated.statusCode, 200)
    assert.equal(updated.json().data.count, 1)
    assert.equal((await call(app, k, 'DELETE', `/v1/user/segments/${seg.id}`)).statusCode, 200)
    assert.equal((await call(app, k, 'GET', `/v1/user/segments/${seg.id}`)).statusCode, 404)
    assert.equal((await call(app, k, 'DELETE', `/v1/user/segments/${seg.id}`)).statusCode, 404)
  })

  test('bad bodies are 400s and save nothing; other projects get 404', async (t) => {
    const ctx = await setup(t)
    const { app, k } = ctx
    for (const [body, path] of [
      [{ name: '', where: { all: [] } }, 'name'],
      [{ name: 'x' }, 'where'],
      [{ name: 'x', where: { field: 'a', op: 'gt', value: 'x' } }, 'where.value'],
      [{ name: 'x', where: { all: [] }, extra: 1 }, 'extra'],
    ] as const) {
      const res = await call(app, k, 'POST', '/v1/user/segments', body)
      assert.equal(res.statusCode, 400, JSON.stringify(body))
      assert.ok(
        res.json().errors.some((e: { path: string }) => e.path === path),
        res.body,
      )
    }
    assert.deepEqual((await call(app, k, 'GET', '/v1/user/segments')).json().data.segments, [])
    const seg = (await call(app, k, 'POST', '/v1/user/segments', { name: 'All', where: { all: [] } })).json().data
    const other = await ctx.key('beta')
    assert.equal((await call(app, other, 'GET', `/v1/user/segments/${seg.id}`)).statusCode, 404)
    assert.equal((await call(app, other, 'GET', `/v1/user/segments/${seg.id}/users`)).statusCode, 404)
    assert.equal((await call(app, other, 'DELETE', `/v1/user/segments/${seg.id}`)).statusCode, 404)
    assert.equal((await call(app, k, 'GET', `/v1/user/segments/${seg.id}/users?limit=5000`)).statusCode, 400)
  })
})

describe('export', () => {
  test('CSV with chosen fields, quoting per RFC 4180', async (t) => {
    const { app, k } = await setup(t)
    const res = await call(app, k, 'POST', '/v1/user/segments/export?fields=note,plan', { where: { all: [] } })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/csv/)
    assert.equal(res.body, 'user_id,note,plan\r\nu1,"a,""b""",pro\r\nu2,,free\r\nu3," lead",free\r\nu4,"x\ny",\r\n')
  })

  test('CSV with all attribute columns by default; NDJSON by Accept', async (t) => {
    const { app, k } = await setup(t)
    const seg = (
      await call(app, k, 'POST', '/v1/user/segments', {
        name: 'Free',
        where: { field: 'plan', op: 'eq', value: 'free' },
      })
    ).json().data
    const csv = await call(app, k, 'GET', `/v1/user/segments/${seg.id}/export`)
    assert.equal(csv.body.split('\r\n')[0], 'user_id,email,ltv,note,plan')
    assert.equal(csv.body.split('\r\n').length, 4)
    const nd = await call(app, k, 'GET', `/v1/user/segments/${seg.id}/export`, undefined, {
      accept: 'application/x-ndjson',
    })
    assert.match(String(nd.headers['content-type']), /^application\/x-ndjson/)
    const lines = nd.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.deepEqual(lines, [
      { user_id: 'u2', attributes: { plan: 'free', ltv: '3', email: 'bob@example.org' } },
      { user_id: 'u3', attributes: { plan: 'free', email: 'cy@example.com', note: ' lead' } },
    ])
    const bad = await call(app, k, 'GET', `/v1/user/segments/${seg.id}/export`, undefined, { accept: 'image/png' })
    assert.equal(bad.statusCode, 406)
    // NDJSON prints attributes in code point order, so both backends answer the same bytes.
    assert.equal(
      nd.body.split('\n')[0],
      '{"user_id":"u2","attributes":{"email":"bob@example.org","ltv":"3","plan":"free"}}',
    )
  })

  test('a malformed escape in the query string is a 400, never read as literal text', async (t) => {
    const { app, k } = await setup(t)
    const seg = (await call(app, k, 'POST', '/v1/user/segments', { name: 'All', where: { all: [] } })).json().data
    for (const url of [
      `/v1/user/segments/${seg.id}/export?fields=%ZZ`,
      `/v1/user/segments/${seg.id}/users?cursor=%FF`,
    ]) {
      const res = await call(app, k, 'GET', url)
      assert.equal(res.statusCode, 400, url)
      assert.match(res.json().msg, /invalid percent-encoding in the query string/)
    }
  })

  test('HEAD of an export answers its headers without reading profiles', async (t) => {
    const { app, k, store } = await setup(t)
    const seg = (await call(app, k, 'POST', '/v1/user/segments', { name: 'All', where: { all: [] } })).json().data
    let scans = 0
    const scan = store.scanProfiles.bind(store)
    store.scanProfiles = async (...args) => {
      scans++
      return scan(...args)
    }
    const head = await call(app, k, 'HEAD', `/v1/user/segments/${seg.id}/export`, undefined, {
      accept: 'application/x-ndjson',
    })
    assert.equal(head.statusCode, 200)
    assert.match(String(head.headers['content-type']), /^application\/x-ndjson/)
    assert.equal(head.body, '')
    assert.equal(scans, 0)
    const get = await call(app, k, 'GET', `/v1/user/segments/${seg.id}/export`)
    assert.equal(get.statusCode, 200)
    assert.ok(scans > 0, 'GET reads profiles')
  })

  test('Accept is negotiated with q-values and wildcards; no header means CSV', async (t) => {
    const { app, k } = await setup(t)
    const cases: [string | undefined, string | 406][] = [
      [undefined, 'text/csv'],
      ['', 'text/csv'],
      ['*/*', 'text/csv'],
      ['text/*', 'text/csv'],
      ['application/*', 'application/x-ndjson'],
      ['text/csv;q=0, application/x-ndjson', 'application/x-ndjson'],
      ['application/x-ndjson;q=0.1, text/csv;q=0.9', 'text/csv'],
      ['application/x-ndjson, text/csv', 'application/x-ndjson'],
      ['application/json, */*;q=0.1', 'text/csv'],
      ['TEXT/CSV', 'text/csv'],
      ['application/ndjson', 'application/x-ndjson'],
      ['text/csv;q=0', 406],
      ['image/png, application/json', 406],
    ]
    for (const [accept, expected] of cases) {
      const res = await call(
        app,
        k,
        'POST',
        '/v1/user/segments/export',
        { where: { all: [] } },
        accept === undefined ? {} : { accept },
      )
      if (expected === 406) assert.equal(res.statusCode, 406, String(accept))
      else assert.match(String(res.headers['content-type']), new RegExp(`^${expected}`), String(accept))
    }
  })

  test('streams more rows than one store page, in order, each once', async (t) => {
    const { app, k } = await setup(t)
    for (let b = 0; b < 25; b++) {
      const values = Array.from({ length: 100 }, (_, i) => [`m${String(b * 100 + i).padStart(5, '0')}`, 'bulk'])
      assert.equal(
        (await call(app, k, 'POST', '/v1/user/profiles', { field_name: ['user_id', 'kind'], values })).statusCode,
        200,
      )
    }
    const res = await call(app, k, 'POST', '/v1/user/segments/export', {
      where: { field: 'kind', op: 'eq', value: 'bulk' },
      fields: ['kind'],
    })
    const rows = res.body.trim().split('\r\n')
    assert.equal(rows.length, 2501)
    assert.equal(rows[1], 'm00000,bulk')
    assert.equal(rows[2500], 'm02499,bulk')
    assert.equal(new Set(rows).size, rows.length)
  })

  test('bad export requests are 400s', async (t) => {
    const { app, k } = await setup(t)
    assert.equal(
      (await call(app, k, 'POST', '/v1/user/segments/export', { where: { field: 'a', op: 'nope' } })).statusCode,
      400,
    )
    assert.equal((await call(app, k, 'POST', '/v1/user/segments/export', {})).statusCode, 400)
    assert.equal(
      (await call(app, k, 'POST', '/v1/user/segments/export?fields=a,,b', { where: { all: [] } })).statusCode,
      400,
    )
  })
})

describe('GET /v1/user/attributes', () => {
  test('names, user counts and top values', async (t) => {
    const { app, k } = await setup(t)
    const res = await call(app, k, 'GET', '/v1/user/attributes')
    assert.equal(res.statusCode, 200)
    const data = res.json().data
    assert.equal(data.users, 4)
    const plan = data.attributes.find((a: { name: string }) => a.name === 'plan')
    assert.deepEqual(plan, {
      name: 'plan',
      users: 3,
      type: 'string',
      shares: { string: 1 },
      min: null,
      max: null,
      distinct_values: 2,
      top_values: [
        { value: 'free', users: 2 },
        { value: 'pro', users: 1 },
      ],
    })
    assert.deepEqual(
      data.attributes.map((a: { name: string }) => a.name),
      ['email', 'ltv', 'note', 'plan'],
    )
  })
})

test('csvField', () => {
  assert.equal(csvField('plain'), 'plain')
  assert.equal(csvField('a,b'), '"a,b"')
  assert.equal(csvField('say "hi"'), '"say ""hi"""')
  assert.equal(csvField('x\r\ny'), '"x\r\ny"')
  assert.equal(csvField(' pad'), '" pad"')
})

describe('export backpressure', () => {
  test('a paused client stops the export reading pages; resumed, it gets every row', async (t) => {
    const ctx = await buildTestApp(t, {}, () => FIXED_MS)
    const k = await ctx.key('big')
    const project = await ctx.store.ensureProject('big')
    const total = 100_000
    const filler = 'x'.repeat(128)
    for (let start = 0; start < total; start += 10_000) {
      const patches = Array.from({ length: 10_000 }, (_, i) => ({
        userId: `user-${String(start + i).padStart(7, '0')}`,
        attributes: Object.assign(Object.create(null), { filler }) as Record<string, string>,
      }))
      await ctx.store.applyUpload(project.id, { patches, rows: patches.length })
    }
    let scans = 0
    const scan = ctx.store.scanProfiles.bind(ctx.store)
    ctx.store.scanProfiles = (...args) => {
      scans++
      return scan(...args)
    }
    const address = new URL(await ctx.app.listen({ port: 0, host: '127.0.0.1' }))
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          host: address.hostname,
          port: address.port,
          method: 'POST',
          path: '/v1/user/segments/export?fields=filler',
          headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        },
        resolve,
      )
      req.on('error', reject)
      req.end(JSON.stringify({ where: { all: [] } }))
    })
    assert.equal(res.statusCode, 200)
    res.pause()
    await new Promise((r) => setTimeout(r, 500))
    const pages = total / 1000
    // Socket buffers on both ends hold a few MB; the rest must wait for the client.
    assert.ok(scans < pages / 2, `read ${scans} of ${pages} pages while the client was paused`)
    let rows = 0
    let tail = ''
    res.setEncoding('utf8')
    for await (const chunk of res) {
      const text = tail + (chunk as string)
      const lines = text.split('\r\n')
      tail = lines.pop() as string
      rows += lines.length
    }
    assert.equal(rows, total + 1)
    assert.ok(scans >= pages)
  })
})

describe('SEGMENTS=off', () => {
  test('segment and attribute routes answer 404 saying why; uploads still work', async (t) => {
    const { app, key } = await buildTestApp(t, { SEGMENTS: 'off' })
    const auth = { authorization: `Bearer ${await key('p')}` }
    const upload = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: auth,
      payload: { field_name: ['user_id', 'plan'], values: [['u1', 'pro']] },
    })
    assert.equal(upload.statusCode, 200)
    for (const [method, url] of [
      ['POST', '/v1/user/segments/query'],
      ['GET', '/v1/user/segments'],
      ['GET', '/v1/user/segments/seg_1/users'],
      ['GET', '/v1/user/attributes'],
    ] as const) {
      const res = await app.inject({ method, url, headers: auth, ...(method === 'POST' ? { payload: {} } : {}) })
      assert.equal(res.statusCode, 404, url)
      assert.match(res.json<{ msg: string }>().msg, /SEGMENTS=off/)
    }
  })
})

describe('segment index over HTTP: source header, budget and /metrics', () => {
  const metricValue = (text: string, line: string): number => {
    const found = text.split('\n').find((l) => l.startsWith(`${line} `))
    assert.ok(found !== undefined, `${line} in /metrics`)
    return Number(found.slice(line.length + 1))
  }

  test('answers say which path gave them; /metrics reports the index bytes, loads and fallbacks', async (t) => {
    const { app, k } = await setup(t)
    const where = { field: 'plan', op: 'eq', value: 'free' }
    const first = await query(app, k, { where })
    assert.equal(first.headers['x-segment-source'], 'database')
    assert.equal(first.json().data.count, 2)
    let answer = first
    for (let i = 0; i < 100 && answer.headers['x-segment-source'] !== 'index'; i++) {
      await new Promise((r) => setTimeout(r, 10))
      answer = await query(app, k, { where })
    }
    assert.equal(answer.headers['x-segment-source'], 'index')
    assert.equal(answer.json().data.count, 2)
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.ok(metricValue(text, 'traitbase_segment_index_bytes{state="ready"}') > 0)
    assert.equal(metricValue(text, 'traitbase_segment_index_bytes{state="loading"}'), 0)
    assert.equal(metricValue(text, 'traitbase_segment_index_loads_total'), 1)
    assert.ok(metricValue(text, 'traitbase_segment_index_fallbacks_total') >= 1)
    assert.equal(metricValue(text, 'traitbase_segment_index_load_failures_total'), 0)
  })

  test('SEGMENT_INDEX_MEMORY_MB too small for the project: exact answers from the database, counted', async (t) => {
    const ctx = await buildTestApp(t, { SEGMENT_INDEX_MEMORY_MB: '1' })
    const k = await ctx.key('big')
    // 1 MiB is less than this project's index: ~4,000 users with a long unique value each.
    for (let b = 0; b < 40; b++) {
      const values = Array.from({ length: 100 }, (_, i) => [
        `u${b * 100 + i}`,
        i % 2 === 0 ? 'a' : 'b',
        'x'.repeat(120) + (b * 100 + i),
      ])
      const r = await call(ctx.app, k, 'POST', '/v1/user/profiles', { field_name: ['user_id', 'k', 'pad'], values })
      assert.equal(r.statusCode, 200, r.body)
    }
    for (let i = 0; i < 10; i++) {
      const r = await query(ctx.app, k, { where: { field: 'k', op: 'eq', value: 'a' }, limit: 3 })
      assert.equal(r.statusCode, 200)
      assert.equal(r.headers['x-segment-source'], 'database')
      assert.equal(r.json().data.count, 2000)
      assert.deepEqual(r.json().data.user_ids, ['u0', 'u10', 'u100'])
      await new Promise((r) => setTimeout(r, 5))
    }
    const text = (await ctx.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.equal(metricValue(text, 'traitbase_segment_index_over_budget_total'), 1)
    assert.equal(metricValue(text, 'traitbase_segment_index_loads_total'), 1, 'not retried per query')
    assert.equal(metricValue(text, 'traitbase_segment_index_fallbacks_total'), 10)
    assert.equal(metricValue(text, 'traitbase_segment_index_budget_bytes'), 1024 * 1024)
    // The catalog needs the index itself: a 503 (the reason is in the server log), not a 500 or a hang.
    const catalog = await call(ctx.app, k, 'GET', '/v1/user/attributes')
    assert.equal(catalog.statusCode, 503)
    assert.equal(catalog.json().msg, 'Service unavailable, try again later')
  })
})
