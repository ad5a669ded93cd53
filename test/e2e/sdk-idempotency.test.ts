import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { createClient } from '../../src/sdk/index.js'
import { buildTestApp } from '../../src/server/test-app.js'

/**
 * The SDK against the real server over a socket, with the first answer to each upload lost on the
 * way back (the server applied it; the client saw a dropped connection): the retry carries the
 * same Idempotency-Key, so the server replays instead of applying again.
 */
test('SDK uploads: one Idempotency-Key per request, the same on its retries; a lost answer is replayed, not re-applied', async (t) => {
  const { app, store, key } = await buildTestApp(t)
  const secret = await key('sdk')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const seen: { key: string | null; replayed: string | null }[] = []
  let lose = true
  const lossyFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init)
    seen.push({
      key: new Headers(init?.headers).get('idempotency-key'),
      replayed: res.headers.get('idempotent-replayed'),
    })
    if (!lose) return res
    lose = false
    await res.arrayBuffer()
    throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) })
  }
  const client = createClient({ baseUrl: base, apiKey: secret, fetch: lossyFetch, retry: { baseDelayMs: 1 } })
  await client.postProfiles(['user_id', 'n'], [['u1', '1']])
  await client.postProfiles(['user_id', 'n'], [['u2', '2']])

  const keys = seen.map((s) => s.key)
  assert.ok(
    keys.every((k) => k !== null && /^"[0-9a-f-]{36}"$/.test(k)),
    String(keys),
  )
  assert.equal(keys[0], keys[1], 'the retry of the first request carries its key')
  assert.deepEqual(
    seen.map((s) => s.replayed),
    [null, 'true', null],
  )
  assert.notEqual(keys[0], keys[2], 'another request, another key')
  const project = (await store.findProject('sdk'))!
  const u1 = await store.getProfile(project.id, 'u1')
  assert.equal(u1?.attributes['n'], '1')
  assert.equal(u1?.createdAt, u1?.updatedAt, 'u1 written once: the retry was a replay')
})
