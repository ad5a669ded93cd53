import assert from 'node:assert/strict'
import { request } from 'node:http'
import { test } from 'node:test'
import { openStore } from '../storage/open-store.js'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { CLIENT_GONE } from './errors.js'
import { createMetrics } from './metrics.js'
import { createTestKey } from './test-app.js'

test('a client that abandons an export: no error logs, no 500, counted as 499 in the metrics', async (t) => {
  const lines: { level: number; msg: string }[] = []
  const store = await openStore('sqlite::memory:')
  const app = buildApp({
    store,
    config: loadConfig({ LOG_LEVEL: 'info' }),
    metrics: createMetrics({ defaultMetrics: false }),
    logStream: { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) },
  })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  const key = await createTestKey(store, 'p')
  // About 12 MB of CSV: far more than socket buffers hold, so the export is still running when the client leaves.
  const fields = Array.from({ length: 49 }, (_, i) => `f${i}`)
  for (let r = 0; r < 20; r++) {
    const values = Array.from({ length: 100 }, (_, i) => [`u${r * 100 + i}`, ...fields.map(() => 'x'.repeat(128))])
    const res = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ field_name: ['user_id', ...fields], values }),
    })
    assert.equal(res.statusCode, 200)
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  for (const abortAt of ['before any byte', 'after the first chunk']) {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        {
          port,
          host: '127.0.0.1',
          method: 'POST',
          path: '/v1/user/segments/export',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'text/csv' },
        },
        (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        },
      )
      req.on('error', () => resolve())
      req.end(JSON.stringify({ where: { all: [] } }))
      if (abortAt === 'before any byte') setImmediate(() => req.destroy())
      setTimeout(() => reject(new Error('no response')), 5000).unref()
    })
  }
  await new Promise((r) => setTimeout(r, 300))
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  const errors = lines.filter((l) => l.level >= 50)
  assert.deepEqual(errors, [], 'nothing logged as an error')
  const gone = lines.filter((l) => l.msg === CLIENT_GONE || l.msg === 'stream closed prematurely')
  assert.equal(gone.length, 2, lines.map((l) => l.msg).join('; '))
  assert.ok(gone.every((l) => l.level === 30))
  assert.match(metrics.body, /http_requests_total\{route="\/v1\/user\/segments\/export",method="POST",status="499"\} 2/)
  assert.doesNotMatch(metrics.body, /status="500"/)
  // The server is fine afterwards.
  const health = await app.inject({ method: 'GET', url: '/healthz' })
  assert.equal(health.statusCode, 200)
})
