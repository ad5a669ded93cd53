import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { parseUploadBody } from '../core/upload.js'
import { TraitbaseApiError } from './api-error.js'
import { createClient } from './client.js'

/** What the test double does with the n-th upload request it receives (1-based). */
type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; msg?: string }
  | { kind: 'hang'; apply: boolean }
  | { kind: 'drop'; apply: boolean }

type State = Map<string, Map<string, string>>

interface Arrival {
  readonly at: number
  readonly body: string
  readonly status: number | 'hang' | 'drop'
}

/**
 * A test double of the upload API over real sockets: applies uploads with the server's own
 * validator and update policy, and injects the faults it is told to.
 */
async function startFakeServer(options: {
  faults?: Record<number, Fault>
  /** Refuse any request carrying this value, like a stricter server would (400). */
  refuseValue?: string
  /** Always answer this status to uploads. */
  always?: number
  /** Random delay before applying, so concurrent requests finish in any order. */
  jitterMs?: number
}) {
  const state: State = new Map()
  const arrivals: Arrival[] = []
  let uploads = 0
  const apply = (text: string): void => {
    const parsed = parseUploadBody(JSON.parse(text))
    if (!parsed.ok) throw new Error(parsed.error[0]?.message)
    for (const p of parsed.value.patches) {
      const attrs = state.get(p.userId) ?? new Map<string, string>()
      state.set(p.userId, attrs)
      for (const [k, v] of Object.entries(p.attributes)) {
        if (v === null) attrs.delete(k)
        else attrs.set(k, v)
      }
    }
  }
  const send = (res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify({ timestamp: Math.floor(Date.now() / 1000), ...body }))
  }
  const handle = async (req: IncomingMessage, res: ServerResponse, text: string): Promise<void> => {
    const url = req.url ?? ''
    if (req.headers.authorization !== 'Bearer k') return send(res, 401, { msg: 'invalid API key' })
    if (req.method === 'GET' && url.startsWith('/v1/user/profiles/')) {
      const id = decodeURIComponent(url.slice('/v1/user/profiles/'.length))
      const attrs = state.get(id)
      if (!attrs) return send(res, 404, { msg: 'no such user' })
      const t = new Date(0).toISOString()
      return send(res, 200, {
        msg: 'Success',
        data: { user_id: id, attributes: Object.fromEntries(attrs), created_at: t, updated_at: t },
      })
    }
    if (req.method === 'DELETE' && url.startsWith('/v1/user/profiles/')) {
      const id = decodeURIComponent(url.slice('/v1/user/profiles/'.length))
      return state.delete(id) ? send(res, 200, { msg: 'Success' }) : send(res, 404, { msg: 'no such user' })
    }
    if (req.method === 'POST' && url === '/v1/user/segments/query') {
      const q = JSON.parse(text) as { limit?: number; cursor?: string }
      const ids = [...state.keys()].sort()
      const start = q.cursor === undefined ? 0 : Number(q.cursor)
      const limit = q.limit ?? 100
      const next = start + limit < ids.length ? String(start + limit) : null
      return send(res, 200, {
        msg: 'Success',
        data: { count: ids.length, user_ids: ids.slice(start, start + limit), next_cursor: next },
      })
    }
    if (req.method !== 'POST' || url !== '/v1/user/profiles') return send(res, 404, { msg: 'not found' })
    const n = ++uploads
    const fault = options.faults?.[n]
    const record = (status: Arrival['status']): number => arrivals.push({ at: Date.now(), body: text, status })
    if (options.jitterMs) await new Promise((r) => setTimeout(r, Math.random() * options.jitterMs!))
    if (options.always !== undefined) {
      record(options.always)
      return send(res, options.always, { msg: `always ${options.always}` })
    }
    if (fault?.kind === 'status') {
      record(fault.status)
      const headers: Record<string, string> = fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }
      return send(res, fault.status, { msg: fault.msg ?? `injected ${fault.status}` }, headers)
    }
    if (fault?.kind === 'hang') {
      record('hang')
      if (fault.apply) apply(text)
      return
    }
    if (fault?.kind === 'drop') {
      record('drop')
      if (fault.apply) apply(text)
      req.socket.destroy()
      return
    }
    if (options.refuseValue !== undefined && text.includes(`"${options.refuseValue}"`)) {
      record(400)
      return send(res, 400, { msg: `values: "${options.refuseValue}" is not allowed here` })
    }
    const parsed = parseUploadBody(JSON.parse(text))
    if (!parsed.ok) {
      record(400)
      return send(res, 400, { msg: parsed.error[0]?.message ?? 'bad' })
    }
    apply(text)
    record(200)
    send(res, 200, { msg: 'Success' })
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e: unknown) => {
        res.writeHead(500).end(JSON.stringify({ msg: String(e) }))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    arrivals,
    uploads: () => uploads,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

type Row = Record<string, string>

/** The final state the spec's update policy gives when rows are applied one by one, in order. */
function expectedState(rows: readonly Row[]): State {
  const state: State = new Map()
  for (const row of rows) {
    const attrs = state.get(row.user_id!) ?? new Map<string, string>()
    state.set(row.user_id!, attrs)
    for (const [k, v] of Object.entries(row)) {
      if (k === 'user_id') continue
      if (v === '') attrs.delete(k)
      else attrs.set(k, v)
    }
  }
  return state
}

/** Rows with repeated users, overlapping attributes, clears, unicode and some 60-attribute rows. */
function makeRows(n: number, users: number): Row[] {
  const rows: Row[] = []
  for (let i = 0; i < n; i++) {
    const row: Row = { user_id: `user-${i % users}` }
    const width = i % 17 === 0 ? 60 : 1 + (i % 5)
    // Few distinct field sets, so rows share requests and overlap on attributes of the same user.
    for (let a = 0; a < width; a++) row[`attr_${(a + (i % 4)) % 64}`] = i % 11 === 0 && a === 0 ? '' : `v${i}-é漢😀`
    rows.push(row)
  }
  return rows
}

const servers: { close(): Promise<void> }[] = []
after(() => Promise.all(servers.map((s) => s.close())))
const start = async (options: Parameters<typeof startFakeServer>[0]) => {
  const s = await startFakeServer(options)
  servers.push(s)
  return s
}
const fastRetry = { baseDelayMs: 5, maxDelayMs: 50 }

describe('uploadProfiles against a test double over real sockets', () => {
  test('every row lands; the final state is the sequential one even with concurrent, reordered requests', async () => {
    const server = await start({ jitterMs: 15 })
    const rows = makeRows(3000, 150)
    const client = createClient({ baseUrl: server.url, apiKey: 'k', concurrency: 8, retry: fastRetry })
    const summary = await client.uploadProfiles(rows)
    assert.equal(summary.aborted, null)
    assert.deepEqual(
      { read: summary.read, sent: summary.sent, rejected: summary.rejected, failed: summary.failed },
      { read: 3000, sent: 3000, rejected: 0, failed: 0 },
    )
    assert.equal(summary.requests, server.uploads())
    assert.equal(summary.retries, 0)
    assert.deepEqual(server.state, expectedState(rows))
  })

  test('429 with Retry-After, 503, timeouts and dropped connections: retried, each row lands, summary right', async () => {
    const server = await start({
      faults: {
        2: { kind: 'status', status: 429, retryAfter: '1' },
        4: { kind: 'status', status: 503 },
        6: { kind: 'hang', apply: false },
        8: { kind: 'hang', apply: true },
        10: { kind: 'drop', apply: false },
        12: { kind: 'drop', apply: true },
        14: { kind: 'status', status: 408 },
        15: { kind: 'status', status: 425 },
      },
    })
    const rows = makeRows(600, 300)
    const client = createClient({ baseUrl: server.url, apiKey: 'k', concurrency: 4, timeoutMs: 300, retry: fastRetry })
    const summary = await client.uploadProfiles(rows)
    assert.equal(summary.aborted, null)
    assert.equal(summary.sent, 600)
    assert.equal(summary.failed, 0)
    assert.equal(summary.retries, 8)
    assert.equal(summary.requests, server.uploads() - 8)
    assert.deepEqual(server.state, expectedState(rows))

    // Retry-After: 1 → the same body comes back no sooner than a second later.
    const limited = server.arrivals.find((a) => a.status === 429)!
    const again = server.arrivals.find((a) => a.at > limited.at && a.body === limited.body && a !== limited)!
    assert.ok(again, 'the 429 request was sent again')
    assert.ok(again.at - limited.at >= 990, `waited ${again.at - limited.at} ms`)
  })

  test('Retry-After as an HTTP date is honoured too', async () => {
    const retryAt = new Date(Math.ceil((Date.now() + 1500) / 1000) * 1000)
    const server = await start({ faults: { 1: { kind: 'status', status: 503, retryAfter: retryAt.toUTCString() } } })
    const client = createClient({ baseUrl: server.url, apiKey: 'k', retry: fastRetry })
    const summary = await client.uploadProfiles([{ user_id: 'u1', a: '1' }])
    assert.equal(summary.sent, 1)
    assert.equal(summary.retries, 1)
    assert.ok(server.arrivals[1]!.at >= retryAt.getTime() - 5, 'not before the date')
  })

  test('rows failing validation are rejected locally with index, user_id and reason, and never sent', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'k' })
    const rejectedSeen: unknown[] = []
    const summary = await client.uploadProfiles(
      [
        { user_id: 'ok1', a: '1' },
        { user_id: '', a: '1' },
        { a: 'no id' },
        { user_id: 'long', a: 'x'.repeat(129) },
        { user_id: 'ok2', a: 2 },
      ],
      { onReject: (_row, record) => rejectedSeen.push(record) },
    )
    assert.equal(summary.sent, 2)
    assert.equal(summary.rejected, 3)
    assert.deepEqual(
      summary.rejectedRows.map((r) => [r.index, r.user_id]),
      [
        [1, ''],
        [2, undefined],
        [3, 'long'],
      ],
    )
    assert.match(summary.rejectedRows[2]!.reason, /longer than 128 characters/)
    assert.equal(rejectedSeen.length, 3)
    assert.deepEqual([...server.state.keys()].sort(), ['ok1', 'ok2'])
    assert.equal(server.state.get('ok2')?.get('a'), '2')
  })

  test('a 400 from a stricter server isolates the bad row; the other 99 land', async () => {
    const server = await start({ refuseValue: 'poison' })
    const rows = Array.from({ length: 100 }, (_, i) => ({ user_id: `u${i}`, a: i === 37 ? 'poison' : 'fine' }))
    const client = createClient({ baseUrl: server.url, apiKey: 'k' })
    const summary = await client.uploadProfiles(rows)
    assert.equal(summary.sent, 99)
    assert.deepEqual(summary.rejectedRows, [
      { index: 37, user_id: 'u37', reason: 'values: "poison" is not allowed here' },
    ])
    assert.equal(server.state.size, 99)
    assert.equal(summary.retries, 0, '400 is never retried')
  })

  test('401 stops the upload: no retry, every row read is reported failed, nothing thrown', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'wrong' })
    const summary = await client.uploadProfiles(makeRows(250, 250))
    assert.equal(summary.sent, 0)
    assert.equal(summary.retries, 0)
    assert.ok(summary.aborted)
    assert.ok(summary.aborted.error instanceof TraitbaseApiError)
    assert.equal(summary.aborted.error.status, 401)
    assert.equal(summary.aborted.reason, 'POST /v1/user/profiles: 401 invalid API key')
    assert.equal(summary.failed, summary.read)
    assert.equal(summary.failedRows.length, summary.read)
  })

  test('retries are bounded: a server that keeps failing ends in failed rows, not a hang', async () => {
    const server = await start({ always: 503 })
    const client = createClient({ baseUrl: server.url, apiKey: 'k', retry: { maxAttempts: 3, ...fastRetry } })
    const summary = await client.uploadProfiles([{ user_id: 'u1', a: '1' }])
    assert.equal(summary.failed, 1)
    assert.equal(summary.retries, 2)
    assert.equal(server.uploads(), 3)
    assert.match(summary.failedRows[0]!.reason, /^POST \/v1\/user\/profiles: 503 always 503$/)
  })

  test('a throwing callback stops the upload instead of escaping into the host', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'k' })
    const summary = await client.uploadProfiles(makeRows(500, 500), {
      onProgress: () => {
        throw new Error('boom')
      },
    })
    assert.match(summary.aborted?.reason ?? '', /a callback threw: boom/)
    assert.equal(summary.sent + summary.failed + summary.rejected, summary.read)
  })

  test('backpressure: the input is read only a bounded distance ahead of what the server acknowledged', async () => {
    const server = await start({ jitterMs: 3 })
    const client = createClient({ baseUrl: server.url, apiKey: 'k', concurrency: 4 })
    let produced = 0
    let maxAhead = 0
    async function* rows() {
      for (let i = 0; i < 20_000; i++) {
        maxAhead = Math.max(maxAhead, produced - server.state.size)
        produced++
        yield { user_id: `u${i}`, a: 'x' }
      }
    }
    const summary = await client.uploadProfiles(rows())
    assert.equal(summary.sent, 20_000)
    assert.ok(maxAhead <= 3500, `read ${maxAhead} rows ahead`)
  })

  test('the checkpoint only covers a prefix of rows that all landed or were rejected', async () => {
    const server = await start({ jitterMs: 10 })
    const client = createClient({ baseUrl: server.url, apiKey: 'k', concurrency: 6 })
    const rows = makeRows(1500, 1500)
    rows[700] = { user_id: '' }
    const checkpoints: number[] = []
    const summary = await client.uploadProfiles(rows, {
      onCheckpoint: (n) => {
        checkpoints.push(n)
        for (let i = 0; i < n; i++) {
          if (i === 700) continue
          assert.ok(server.state.has(rows[i]!.user_id!), `row ${i} is behind the checkpoint but not stored`)
        }
      },
    })
    assert.equal(summary.sent, 1499)
    assert.equal(checkpoints.at(-1), 1500)
    assert.deepEqual(
      checkpoints,
      [...checkpoints].sort((a, b) => a - b),
    )
  })

  test('a slow input is not held back: partly filled batches go out when the network is idle', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'k' })
    let storedBeforeMore = -1
    async function* rows() {
      yield { user_id: 'a', x: '1' }
      yield { user_id: 'b', x: '1' }
      await new Promise((r) => setTimeout(r, 400))
      storedBeforeMore = server.state.size
      yield { user_id: 'c', x: '1' }
    }
    const summary = await client.uploadProfiles(rows())
    assert.equal(summary.sent, 3)
    assert.equal(storedBeforeMore, 2)
  })

  test('an input that throws ends the upload with the rows read so far accounted for', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'k' })
    function* rows() {
      yield { user_id: 'a', x: '1' }
      throw new Error('disk on fire')
    }
    const summary = await client.uploadProfiles(rows())
    assert.match(summary.aborted?.reason ?? '', /reading the input failed: disk on fire/)
    assert.equal(summary.read, 1)
    assert.equal(summary.sent + summary.failed, 1)
  })
})

describe('client reads', () => {
  test('getProfile, deleteProfile and querySegment, typed, with 404 as null/false', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: `${server.url}/`, apiKey: 'k' })
    await client.uploadProfiles(
      Array.from({ length: 25 }, (_, i) => ({ user_id: `u/${String(i).padStart(2, '0')}`, a: 'x' })),
    )
    const p = await client.getProfile('u/03')
    assert.equal(p?.user_id, 'u/03')
    assert.deepEqual(p?.attributes, { a: 'x' })
    assert.equal(await client.getProfile('nobody'), null)
    assert.equal(await client.deleteProfile('u/03'), true)
    assert.equal(await client.deleteProfile('u/03'), false)

    const seen: string[] = []
    let pages = 0
    for await (const page of client.querySegment({ field: 'a', op: 'eq', value: 'x' }, { limit: 10 })) {
      pages++
      assert.equal(page.count, 24)
      seen.push(...page.user_ids)
    }
    assert.equal(pages, 3)
    assert.equal(seen.length, 24)
  })

  test('errors say what was attempted and what came back', async () => {
    const server = await start({})
    const client = createClient({ baseUrl: server.url, apiKey: 'bad' })
    await assert.rejects(client.getProfile('x'), (e: unknown) => {
      assert.ok(e instanceof TraitbaseApiError)
      assert.equal(e.message, 'GET /v1/user/profiles/x: 401 invalid API key')
      assert.equal(e.retryable, false)
      return true
    })
    const closed = await startFakeServer({})
    await closed.close()
    const down = createClient({ baseUrl: closed.url, apiKey: 'k', retry: { maxAttempts: 2, ...fastRetry } })
    await assert.rejects(down.getProfile('x'), (e: unknown) => {
      assert.ok(e instanceof TraitbaseApiError)
      assert.equal(e.status, null)
      assert.equal(e.retryable, true)
      assert.match(e.message, /^GET \/v1\/user\/profiles\/x: network error: .*ECONNREFUSED/)
      return true
    })
    assert.throws(() => createClient({ baseUrl: 'not a url', apiKey: 'k' }), TypeError)
  })

  test('options that could only fail later are refused at once, without echoing the key', () => {
    const ok = { baseUrl: 'http://127.0.0.1:1', apiKey: 'tbk_x' }
    assert.throws(() => createClient({ ...ok, baseUrl: 'http://h/?q=1' }), /must not have a query or a fragment/)
    assert.throws(() => createClient({ ...ok, baseUrl: 'http://h/#x' }), /must not have a query or a fragment/)
    for (const apiKey of ['', 'tbk_ä', 'with space', 'line\nbreak']) {
      assert.throws(
        () => createClient({ ...ok, apiKey }),
        (e: unknown) =>
          e instanceof TypeError && /printable ASCII/.test(e.message) && !e.message.includes(apiKey || '\0'),
      )
    }
    for (const timeoutMs of [-1, 0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      assert.throws(() => createClient({ ...ok, timeoutMs }), RangeError, String(timeoutMs))
    }
  })

  test('an empty user id is refused before any request', async () => {
    let calls = 0
    const client = createClient({
      baseUrl: 'http://127.0.0.1:1',
      apiKey: 'k',
      fetch: async () => {
        calls++
        return new Response('{}')
      },
    })
    await assert.rejects(client.getProfile(''), TypeError)
    await assert.rejects(client.deleteProfile(''), TypeError)
    assert.equal(calls, 0)
  })

  test('a 404 for a missing route is an error (wrong baseUrl), not "no such user"', async () => {
    const answer = (msg: string) => async () =>
      new Response(JSON.stringify({ msg, timestamp: 1 }), {
        status: 404,
        headers: { 'content-type': 'application/json' },
      })
    const wrongBase = createClient({
      baseUrl: 'http://h/api',
      apiKey: 'k',
      fetch: answer('Not found: no route for GET /api/v1/user/profiles/u1'),
    })
    await assert.rejects(wrongBase.getProfile('u1'), (e: unknown) => {
      assert.ok(e instanceof TraitbaseApiError)
      assert.equal(e.status, 404)
      assert.match(e.msg, /no route .*is baseUrl right\?/)
      return true
    })
    await assert.rejects(wrongBase.deleteProfile('u1'), TraitbaseApiError)
    const right = createClient({
      baseUrl: 'http://h',
      apiKey: 'k',
      fetch: answer('No user with this user_id in this project'),
    })
    assert.equal(await right.getProfile('u1'), null)
    assert.equal(await right.deleteProfile('u1'), false)
  })
})
