import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { openStore } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { fingerprintOf, IDEMPOTENCY_TTL_MS } from './idempotency.js'
import { createMetrics } from './metrics.js'
import { buildTestApp, createTestKey } from './test-app.js'

const T0 = Date.parse('2026-03-01T12:00:00.000Z')
const body = (plan: string) => ({ field_name: ['user_id', 'plan'], values: [['u1', plan]] })

function post(app: FastifyInstance, key: string, payload: unknown, idempotencyKey?: string) {
  return app.inject({
    method: 'POST',
    url: '/v1/user/profiles',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
    },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  })
}

async function plan(store: Store, project: string, userId = 'u1') {
  const p = await store.findProject(project)
  return p && (await store.getProfile(p.id, userId))?.attributes['plan']
}

describe('Idempotency-Key on POST /v1/user/profiles', () => {
  test('same key and body: the first answer replayed (status, body), nothing written again', async (t) => {
    let clock = T0
    const { app, store, key } = await buildTestApp(t, {}, () => clock)
    const k = await key('p')
    const first = await post(app, k, body('a'), '"retry-1"')
    assert.equal(first.statusCode, 200)
    assert.equal(first.headers['idempotent-replayed'], undefined)
    await post(app, k, body('b')) // a later upload without a key
    clock += 5_000
    // The same key as a bare token is the same key; the same body re-serialized is the same body.
    const again = await post(app, k, JSON.stringify(body('a'), null, 2), 'retry-1')
    assert.equal(again.statusCode, 200)
    assert.equal(again.body, first.body, 'the first answer, its timestamp included')
    assert.equal(again.headers['idempotent-replayed'], 'true')
    assert.equal(await plan(store, 'p'), 'b', 'the replay did not write "a" again')
  })

  test('same key, another body: 422 and nothing written; another project has its own keys', async (t) => {
    const { app, store, key } = await buildTestApp(t)
    const [k, other] = [await key('p'), await key('q')]
    assert.equal((await post(app, k, body('a'), 'k1')).statusCode, 200)
    const reused = await post(app, k, body('z'), 'k1')
    assert.equal(reused.statusCode, 422)
    assert.match(reused.json<{ msg: string }>().msg, /already used with another request body/)
    assert.equal(await plan(store, 'p'), 'a')
    assert.equal((await post(app, other, body('z'), 'k1')).statusCode, 200, 'keys are scoped per project')
    assert.equal(await plan(store, 'q'), 'z')
  })

  test('while the first request with the key is in flight: 409 with Retry-After, nothing written', async (t) => {
    const { app, store, key } = await buildTestApp(t, {}, () => T0)
    const k = await key('p')
    const project = (await store.findProject('p'))!
    // Another process holds the key: claimed, not yet answered.
    const claim = {
      projectId: project.id,
      key: 'busy',
      fingerprint: fingerprintOf(body('a')),
      now: new Date(T0),
      expiredBefore: new Date(0),
      abandonedBefore: new Date(0),
    }
    assert.equal((await store.claimIdempotencyKey(claim)).kind, 'claimed')
    const res = await post(app, k, body('a'), 'busy')
    assert.equal(res.statusCode, 409)
    assert.equal(res.headers['retry-after'], '1')
    assert.equal(await plan(store, 'p'), undefined)
    await store.completeIdempotencyKey(project.id, 'busy', 200, '{"msg":"Success","timestamp":1}')
    const replay = await post(app, k, body('a'), 'busy')
    assert.equal(replay.body, '{"msg":"Success","timestamp":1}')
  })

  test('a failed upload frees its key: the retry runs; a 400 never takes the key', async (t) => {
    const config = loadConfig({ LOG_LEVEL: 'silent' })
    const real = await openStore('sqlite::memory:')
    let failNext = true
    const store = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'applyUpload' && failNext) {
          return () => {
            failNext = false
            return Promise.reject(Object.assign(new Error('connection lost'), { code: 'ECONNRESET' }))
          }
        }
        const value = Reflect.get(target, prop, receiver) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const app = buildApp({ store, config, metrics: createMetrics({ defaultMetrics: false }) })
    t.after(async () => {
      await app.close()
      await real.close()
    })
    const k = await createTestKey(real, 'p')
    assert.equal((await post(app, k, body('a'), 'f1')).statusCode, 503)
    const retry = await post(app, k, body('a'), 'f1')
    assert.equal(retry.statusCode, 200)
    assert.equal(retry.headers['idempotent-replayed'], undefined, 'ran, not replayed')
    assert.equal(await plan(real, 'p'), 'a')
    assert.equal((await post(app, k, { field_name: ['user_id'], values: [[]] }, 'f2')).statusCode, 400)
    assert.equal((await post(app, k, body('c'), 'f2')).statusCode, 200, 'the 400 did not bind f2 to its body')
  })

  test('after 24 hours the key is free again; expired keys are pruned', async (t) => {
    let clock = T0
    const { app, store, key } = await buildTestApp(t, {}, () => clock)
    const k = await key('p')
    assert.equal((await post(app, k, body('a'), 'day')).statusCode, 200)
    clock += IDEMPOTENCY_TTL_MS - 1000
    assert.equal((await post(app, k, body('b'), 'day')).statusCode, 422)
    clock += 2000
    const later = await post(app, k, body('b'), 'day')
    assert.equal(later.statusCode, 200)
    assert.equal(later.headers['idempotent-replayed'], undefined)
    assert.equal(await plan(store, 'p'), 'b')
    assert.equal(await store.pruneIdempotencyKeys(new Date(clock + IDEMPOTENCY_TTL_MS)), 1)
  })

  test('malformed or repeated Idempotency-Key: 400, nothing written', async (t) => {
    const { app, store, key } = await buildTestApp(t)
    const k = await key('p')
    for (const bad of ['', '""', '"unterminated', 'has space', 'x'.repeat(256), 'é']) {
      const res = await post(app, k, body('a'), bad)
      assert.equal(res.statusCode, 400, JSON.stringify(bad))
      assert.match(res.json<{ msg: string }>().msg, /Idempotency-Key/)
    }
    const twice = await app.inject({
      method: 'POST',
      url: '/v1/user/profiles',
      headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json', 'idempotency-key': ['a', 'b'] },
      payload: JSON.stringify(body('a')),
    })
    assert.equal(twice.statusCode, 400)
    assert.equal(await plan(store, 'p'), undefined)
  })
})
