import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import { buildTestApp, type TestApp } from './test-app.js'

interface Listening extends TestApp {
  readonly port: number
  readonly k: string
}

async function listen(t: TestContext, env: Record<string, string> = {}): Promise<Listening> {
  const ctx = await buildTestApp(t, env)
  await ctx.app.listen({ port: 0, host: '127.0.0.1' })
  const address = ctx.app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { ...ctx, port: address.port, k: await ctx.key('alpha') }
}

interface RawResponse {
  readonly status: number
  readonly head: string
  readonly body: string
}

/** Writes raw bytes, reads until the server closes, returns every response it sent. */
function raw(port: number, parts: (string | Buffer)[], options: { end?: boolean } = {}): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => resolve(parseResponses(Buffer.concat(chunks).toString('utf8'))))
    socket.on('connect', () => {
      for (const p of parts) socket.write(p)
      if (options.end ?? true) socket.end()
    })
  })
}

function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = text
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n')
    const head = rest.slice(0, headEnd)
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    const body = Buffer.from(rest.slice(headEnd + 4))
      .subarray(0, length)
      .toString('utf8')
    out.push({ status: Number(head.slice(9, 12)), head, body })
    rest = Buffer.from(rest.slice(headEnd + 4))
      .subarray(length)
      .toString('utf8')
  }
  return out
}

function post(port: number, key: string, body: string | Buffer, extraHeaders = ''): Promise<RawResponse[]> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body
  return raw(port, [
    `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${bytes.length}\r\n${extraHeaders}\r\n`,
    bytes,
  ])
}

function only(responses: RawResponse[]): RawResponse {
  assert.ok(responses.length >= 1, 'the server answered')
  return responses[0] as RawResponse
}

function assertEnvelope(res: RawResponse, status: number, msg: RegExp): void {
  assert.equal(res.status, status, res.body)
  const body = JSON.parse(res.body) as { msg: string; timestamp: number }
  assert.match(body.msg, msg)
  assert.equal(typeof body.timestamp, 'number')
  assert.ok(!res.body.includes('    at '), 'no stack trace')
}

async function healthy(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`)
  assert.equal(res.status, 200)
}

describe('hostile input over a real socket: a 4xx, never a crash or a 5xx', () => {
  test('invalid UTF-8 is a 400', async (t) => {
    const s = await listen(t)
    const body = Buffer.concat([
      Buffer.from('{"field_name":["user_id"],"values":[["'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"]]}'),
    ])
    assertEnvelope(only(await post(s.port, s.k, body)), 400, /not valid UTF-8/)
    const overlong = Buffer.concat([
      Buffer.from('{"field_name":["user_id"],"values":[["'),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from('"]]}'),
    ])
    assertEnvelope(only(await post(s.port, s.k, overlong)), 400, /not valid UTF-8/)
    await healthy(s.port)
  })

  test('JSON with escaped lone surrogates is a 400 naming the value', async (t) => {
    const s = await listen(t)
    const res = only(await post(s.port, s.k, '{"field_name":["user_id","a"],"values":[["u","\\ud800"]]}'))
    assertEnvelope(res, 400, /^values\[0\]\[1\]: .*lone UTF-16 surrogate/)
  })

  test('deep nesting of arrays and objects is a quick 400, refused before parsing', async (t) => {
    const s = await listen(t)
    const depth = 4_000_000
    const started = Date.now()
    assertEnvelope(only(await post(s.port, s.k, '['.repeat(depth) + ']'.repeat(depth))), 400, /nests deeper than 256/)
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`)
    const objects =
      '{"values":[[' + '{"a":'.repeat(200_000) + '1' + '}'.repeat(200_000) + ']],"field_name":["user_id"]}'
    assertEnvelope(only(await post(s.port, s.k, objects)), 400, /nests deeper than 256/)
    assertEnvelope(only(await post(s.port, s.k, '['.repeat(100_000))), 400, /nests deeper than 256/)
    assertEnvelope(only(await post(s.port, s.k, '['.repeat(200))), 400, /not valid JSON/)
    const many = '[' + Array(1_000_000).fill('{"a":1}').join(',') + ']'
    assertEnvelope(only(await post(s.port, s.k, many)), 400, /more than 200000 JSON values/)
    const array = '[' + Array(90_000).fill('{"a":1}').join(',') + ']'
    assertEnvelope(only(await post(s.port, s.k, array)), 400, /must be a JSON object/)
    await healthy(s.port)
  })

  test('huge arrays are a 400 naming the limit', async (t) => {
    const s = await listen(t)
    const rows = (n: number) => '{"field_name":["user_id"],"values":[' + Array(n).fill('["u"]').join(',') + ']}'
    assertEnvelope(only(await post(s.port, s.k, rows(90_000))), 400, /has 90000 rows; the limit is 100/)
    assertEnvelope(only(await post(s.port, s.k, rows(400_000))), 400, /more than 200000 JSON values/)
    const fields = '{"field_name":[' + Array(150_000).fill('"f"').join(',') + '],"values":[["u"]]}'
    assertEnvelope(only(await post(s.port, s.k, fields)), 400, /the limit is 50/)
    await healthy(s.port)
  })

  test('__proto__ and constructor keys in the body are plain unknown keys', async (t) => {
    const s = await listen(t)
    const body =
      '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}},"field_name":["user_id"],"values":[["u"]]}'
    assertEnvelope(only(await post(s.port, s.k, body)), 400, /^__proto__: unknown field/)
    assert.equal(({} as Record<string, unknown>)['isAdmin'], undefined)
  })

  test('a UTF-8 byte order mark is tolerated (RFC 8259 §8.1)', async (t) => {
    const s = await listen(t)
    const res = only(await post(s.port, s.k, '\ufeff{"field_name":["user_id"],"values":[["u"]]}'))
    assert.equal(res.status, 200, res.body)
  })

  test('a body shorter than its Content-Length, then end of stream, is a 400', async (t) => {
    const s = await listen(t)
    const res = await raw(s.port, [
      `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.k}\r\nContent-Type: application/json\r\n` +
        'Content-Length: 100\r\n\r\n{"field_name":["user_id"]',
    ])
    // Node drops a request whose body never completes; if it answers, it must be a 4xx in our envelope.
    for (const r of res) assert.ok(r.status >= 400 && r.status < 500, r.head)
    await healthy(s.port)
  })

  test('a body longer than its Content-Length: only 400s, and nothing stored', async (t) => {
    const s = await listen(t)
    const full = '{"field_name":["user_id"],"values":[["u"]]}'
    const res = await raw(s.port, [
      `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.k}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 10\r\n\r\n${full}`,
    ])
    // The cut body is invalid JSON; the rest is garbage to the HTTP parser, which may answer first and close.
    assert.ok(res.length >= 1)
    for (const r of res) assertEnvelope(r, 400, /not valid JSON|Malformed HTTP request/)
    const get = await fetch(`http://127.0.0.1:${s.port}/v1/user/profiles/u`, {
      headers: { authorization: `Bearer ${s.k}` },
    })
    assert.equal(get.status, 404, 'nothing was stored')
  })

  test('conflicting or non-numeric Content-Length is a 400 from the HTTP parser, in our envelope', async (t) => {
    const s = await listen(t)
    const head = `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.k}\r\nContent-Type: application/json\r\n`
    for (const bad of [
      'Content-Length: 5\r\nContent-Length: 6\r\n',
      'Content-Length: abc\r\n',
      'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
    ]) {
      assertEnvelope(only(await raw(s.port, [`${head}${bad}\r\n{}{}{}`])), 400, /Malformed HTTP request/)
    }
    assertEnvelope(only(await raw(s.port, ['NOT HTTP AT ALL\r\n\r\n'])), 400, /Malformed HTTP request/)
    await healthy(s.port)
  })

  test('bad percent-encoding in the path is a 400', async (t) => {
    const s = await listen(t)
    const res = only(
      await raw(s.port, [
        `GET /v1/user/profiles/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${s.k}\r\n\r\n`,
      ]),
    )
    assertEnvelope(res, 400, /percent-encoding/)
  })

  test("headers over Node's limit are a 431 in our envelope", async (t) => {
    const s = await listen(t)
    const res = only(await raw(s.port, [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]))
    assertEnvelope(res, 431, /headers are too large/)
    await healthy(s.port)
  })

  test('a sane X-Request-Id is used and echoed; anything else is replaced by a UUID', async (t) => {
    const s = await listen(t)
    const sane = await fetch(`http://127.0.0.1:${s.port}/healthz`, { headers: { 'x-request-id': 'lb-7f3a.42' } })
    assert.equal(sane.headers.get('x-request-id'), 'lb-7f3a.42')
    // An API key pasted into the header is not echoed or logged either.
    for (const bad of ['a b', 'x'.repeat(129), '<script>', '', `tbk_${'A'.repeat(43)}`, 'TBK_x']) {
      const res = await fetch(`http://127.0.0.1:${s.port}/healthz`, { headers: { 'x-request-id': bad } })
      assert.match(
        res.headers.get('x-request-id') ?? '',
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      )
    }
  })
})

describe('HTTP edge cases answered in our envelope', () => {
  const upload = '{"field_name":["user_id"],"values":[["edge"]]}'
  const head = (key: string, extra: string) =>
    `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: application/json\r\n${extra}`

  test('an unknown Expect is a 417 with a body; an announced body over the limit is a 413 before any 100 Continue', async (t) => {
    const s = await listen(t, { BODY_LIMIT: '4KiB' })
    assertEnvelope(
      only(await raw(s.port, [head(s.k, `Expect: weird\r\nContent-Length: ${upload.length}\r\n\r\n`)])),
      417,
      /only 100-continue/,
    )
    const big = await raw(s.port, [head(s.k, 'Expect: 100-continue\r\nContent-Length: 100000000\r\n\r\n')])
    assertEnvelope(only(big), 413, /larger than the limit of 4096 bytes/)
    const fine = await raw(s.port, [
      head(s.k, `Expect: 100-continue\r\nContent-Length: ${upload.length}\r\n\r\n`),
      upload,
    ])
    assert.deepEqual(
      fine.map((r) => r.status),
      [100, 200],
    )
    const metrics = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()
    assert.match(metrics, /method="\(unparsed\)",status="417"\} 1/)
    assert.match(metrics, /method="\(unparsed\)",status="413"\} 1/)
  })

  test('an HTTP/1.1 request without Host is a 400 with a body', async (t) => {
    const s = await listen(t)
    assertEnvelope(
      only(await raw(s.port, ['GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'])),
      400,
      /Missing Host header/,
    )
  })

  test('compressed or otherwise encoded bodies are a 415, never read as plain text', async (t) => {
    const s = await listen(t)
    for (const coding of ['gzip', 'br', 'deflate']) {
      const res = only(
        await raw(s.port, [
          head(s.k, `Content-Encoding: ${coding}\r\nContent-Length: ${upload.length}\r\n\r\n`),
          upload,
        ]),
      )
      assertEnvelope(res, 415, new RegExp(`Content-Encoding "${coding}" is not supported`))
    }
    const chunked = `${upload.length.toString(16)}\r\n${upload}\r\n0\r\n\r\n`
    assertEnvelope(
      only(await raw(s.port, [head(s.k, 'Transfer-Encoding: gzip, chunked\r\n\r\n'), chunked])),
      415,
      /Transfer-Encoding/,
    )
    assert.equal(
      only(
        await raw(s.port, [
          head(s.k, 'Content-Encoding: identity\r\n' + `Content-Length: ${upload.length}\r\n\r\n`),
          upload,
        ]),
      ).status,
      200,
    )
    assert.equal(only(await raw(s.port, [head(s.k, 'Transfer-Encoding: chunked\r\n\r\n'), chunked])).status, 200)
  })

  test('two Authorization headers are a 401, whichever comes first', async (t) => {
    const s = await listen(t)
    for (const [first, second] of [
      [s.k, 'tbk_x'],
      ['tbk_x', s.k],
    ]) {
      const res = only(
        await raw(s.port, [
          `GET /v1/user/profiles/u1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
            `Authorization: Bearer ${first}\r\nAuthorization: Bearer ${second}\r\n\r\n`,
        ]),
      )
      assertEnvelope(res, 401, /More than one Authorization header/)
    }
  })
})

describe('shutdown', () => {
  test('while closing, an in-flight request finishes with Connection: close; a request arriving meanwhile gets a 503', async (t) => {
    const s = await listen(t)
    const body = '{"field_name":["user_id"],"values":[["during-close"]]}'
    const socket = connect(s.port, '127.0.0.1')
    let data = ''
    socket.on('data', (c: Buffer) => (data += c.toString('utf8')))
    const closed = new Promise((r) => socket.on('close', r))
    await new Promise((r) => socket.on('connect', r))
    socket.write(
      `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.k}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    )
    // A second keep-alive connection that is between requests when the close begins.
    const other = await fetch(`http://127.0.0.1:${s.port}/healthz`)
    assert.equal(other.status, 200)
    await new Promise((r) => setTimeout(r, 100))
    const closing = s.app.close()
    await new Promise((r) => setTimeout(r, 100))
    socket.write(body.slice(5))
    await closed
    const started = Date.now()
    await closing
    assert.ok(Date.now() - started < 2000, 'close() did not wait for idle connections')
    const [first] = parseResponses(data)
    assert.equal(first?.status, 200, data)
    assert.match(first?.head ?? '', /\r\nconnection: close/i)
    const stored = await s.store.getProfile((await s.store.findProject('alpha'))!.id, 'during-close')
    assert.ok(stored, 'the in-flight upload was committed')
  })

  test('connections that never sent a byte do not hold up close()', async (t) => {
    const s = await listen(t)
    const silent = Array.from({ length: 5 }, () => connect(s.port, '127.0.0.1'))
    await Promise.all(silent.map((c) => new Promise((r) => c.on('connect', r))))
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await s.app.close()
    assert.ok(Date.now() - started < 2000, `close() took ${Date.now() - started} ms`)
    await Promise.all(silent.map((c) => new Promise((r) => (c.destroyed ? r(null) : c.on('close', r)))))
  })
})

describe('slow and idle clients', () => {
  const env = {
    HEADERS_TIMEOUT_MS: '400',
    REQUEST_TIMEOUT_MS: '800',
    CONNECTION_TIMEOUT_MS: '10000',
    KEEP_ALIVE_TIMEOUT_MS: '300',
  }

  function closedWithin(socket: Socket, ms: number): Promise<{ closedAfterMs: number; data: string }> {
    const started = Date.now()
    let data = ''
    socket.on('data', (c: Buffer) => (data += c.toString('utf8')))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms)
      socket.on('close', () => {
        clearTimeout(timer)
        resolve({ closedAfterMs: Date.now() - started, data })
      })
      socket.on('error', () => undefined)
    })
  }

  test('half a request does not block another client, and is dropped after the headers timeout', async (t) => {
    const s = await listen(t, env)
    const slow = connect(s.port, '127.0.0.1')
    await new Promise((r) => slow.on('connect', r))
    slow.write(`POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bear`)
    const closed = closedWithin(slow, 5000)
    const res = await fetch(`http://127.0.0.1:${s.port}/v1/user/profiles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.k}`, 'content-type': 'application/json' },
      body: '{"field_name":["user_id"],"values":[["fast"]]}',
    })
    assert.equal(res.status, 200)
    const { closedAfterMs, data } = await closed
    assert.ok(closedAfterMs < 3000, `closed after ${closedAfterMs} ms`)
    if (data !== '') assert.match(data, /^HTTP\/1.1 408 /)
  })

  test('a body that stops arriving is dropped after the request timeout, with a 408', async (t) => {
    const s = await listen(t, env)
    const slow = connect(s.port, '127.0.0.1')
    await new Promise((r) => slow.on('connect', r))
    slow.write(
      `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.k}\r\nContent-Type: application/json\r\n` +
        'Content-Length: 1000\r\n\r\n{"field_name":',
    )
    const { closedAfterMs, data } = await closedWithin(slow, 5000)
    assert.ok(closedAfterMs < 3000, `closed after ${closedAfterMs} ms`)
    const [res] = parseResponses(data)
    if (res !== undefined) assert.ok(res.status === 408 || res.status === 400, res.head)
    await healthy(s.port)
    // Counted as what the client was told, not as a client that went away (499).
    const metrics = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()
    assert.match(metrics, /http_requests_total\{route="\/v1\/user\/profiles",method="POST",status="40[08]"\} 1/)
    assert.doesNotMatch(metrics, /status="499"/)
  })

  test('requests the HTTP parser refuses are counted too', async (t) => {
    const s = await listen(t)
    only(await raw(s.port, ['GARBAGE\r\n\r\n']))
    only(await raw(s.port, [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]))
    const metrics = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()
    assert.match(metrics, /http_requests_total\{route="\(unmatched\)",method="\(unparsed\)",status="400"\} 1/)
    assert.match(metrics, /http_requests_total\{route="\(unmatched\)",method="\(unparsed\)",status="431"\} 1/)
  })

  test('a connection that never sends a byte is closed with a 408 after the request timeout', async (t) => {
    const s = await listen(t, env)
    const silent = connect(s.port, '127.0.0.1')
    await new Promise((r) => silent.on('connect', r))
    const { closedAfterMs, data } = await closedWithin(silent, 5000)
    assert.ok(closedAfterMs < 3000, `closed after ${closedAfterMs} ms`)
    const [res] = parseResponses(data)
    assert.ok(res)
    assertEnvelope(res, 408, /timed out/)
  })

  test('an idle keep-alive connection is closed after the keep-alive timeout', async (t) => {
    const s = await listen(t, env)
    const socket = connect(s.port, '127.0.0.1')
    await new Promise((r) => socket.on('connect', r))
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    const { closedAfterMs, data } = await closedWithin(socket, 5000)
    assert.match(data, /^HTTP\/1.1 200 /)
    assert.ok(closedAfterMs < 2000, `closed after ${closedAfterMs} ms`)
  })
})

describe('concurrency over real sockets', () => {
  test('many concurrent uploads to the same users in different orders: all 200, no attribute lost', async (t) => {
    const s = await listen(t)
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`)
    const writers = 24
    const shuffled = (seed: number) => {
      const a = [...users]
      for (let i = a.length - 1; i > 0; i--) {
        const j = (seed * 7919 + i * 104729) % (i + 1)
        ;[a[i], a[j]] = [a[j] as string, a[i] as string]
      }
      return a
    }
    const statuses = await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        const order = w % 2 === 0 ? shuffled(w + 1) : [...users].reverse()
        const res = await fetch(`http://127.0.0.1:${s.port}/v1/user/profiles`, {
          method: 'POST',
          headers: { authorization: `Bearer ${s.k}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            field_name: ['user_id', `attr_${w}`, 'shared'],
            values: order.map((u) => [u, `w${w}`, `w${w}`]),
          }),
        })
        await res.arrayBuffer()
        return res.status
      }),
    )
    assert.deepEqual(statuses, Array(writers).fill(200))
    for (const u of users) {
      const res = await fetch(`http://127.0.0.1:${s.port}/v1/user/profiles/${u}`, {
        headers: { authorization: `Bearer ${s.k}` },
      })
      const { data } = (await res.json()) as { data: { attributes: Record<string, string> } }
      for (let w = 0; w < writers; w++) assert.equal(data.attributes[`attr_${w}`], `w${w}`, `${u} attr_${w}`)
      assert.match(data.attributes['shared'] ?? '', /^w\d+$/)
    }
  })
})
