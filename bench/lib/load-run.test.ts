import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { parseUploadBody } from '../../src/core/upload.js'
import { runLoad } from './load-run.js'

/** A real server over sockets that validates bodies and fails every 5th request with a 503. */
async function startFakeServer(): Promise<{
  url: string
  seen: string[]
  sockets: Set<unknown>
  close(): Promise<void>
}> {
  const seen: string[] = []
  const sockets = new Set<unknown>()
  let n = 0
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      n++
      const ok =
        req.method === 'POST' &&
        req.url === '/v1/user/profiles' &&
        req.headers.authorization === 'Bearer tbk_test' &&
        req.headers['content-type'] === 'application/json' &&
        parseUploadBody(JSON.parse(Buffer.concat(chunks).toString('utf8'))).ok
      seen.push(String(ok))
      const status = !ok ? 400 : n % 5 === 0 ? 503 : 200
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ msg: status === 200 ? 'Success' : 'nope', timestamp: 1 }))
    })
  })
  server.on('connection', (s) => sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    sockets,
    close: () => new Promise((r) => server.close(() => r())),
  }
}

test('runLoad sends valid requests over at most N keep-alive connections and counts errors', async () => {
  const fake = await startFakeServer()
  try {
    const result = await runLoad({
      baseUrl: fake.url,
      apiKey: 'tbk_test',
      seconds: 1,
      connections: 4,
      preload: 0,
      seed: 1,
    })
    assert.ok(fake.seen.length > 20, `only ${fake.seen.length} requests`)
    assert.ok(
      fake.seen.every((s) => s === 'true'),
      'every body valid',
    )
    assert.equal(result.requests + result.errors, fake.seen.length)
    assert.equal(result.errors, Math.floor(fake.seen.length / 5))
    assert.equal(result.users, result.requests * 100)
    assert.equal(result.latenciesMs.length, result.requests)
    assert.ok(result.errorSamples[0]?.startsWith('HTTP 503: {"msg":"nope"'))
    assert.ok(fake.sockets.size <= 4, `${fake.sockets.size} connections`)
    assert.ok(result.elapsedMs >= 1000 && result.elapsedMs < 5000)
  } finally {
    await fake.close()
  }
})

test('runLoad reports a refused connection as errors, never throws', async () => {
  const fake = await startFakeServer()
  const url = fake.url
  await fake.close()
  const result = await runLoad({ baseUrl: url, apiKey: 'k', seconds: 0.2, connections: 2, preload: 0, seed: 1 })
  assert.equal(result.requests, 0)
  assert.ok(result.errors > 0)
  assert.match(result.errorSamples[0] ?? '', /ECONNREFUSED/)
})
