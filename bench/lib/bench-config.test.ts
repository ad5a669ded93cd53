import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseBenchConfig } from './bench-config.js'

describe('parseBenchConfig', () => {
  test('defaults: SQLite, 20 s, both sizes, 32 connections, segments on', () => {
    const c = parseBenchConfig({})
    assert.ok(c.ok)
    assert.deepEqual(c.value, {
      backend: 'sqlite',
      postgresUrl: undefined,
      seconds: 20,
      preloads: [0, 1_000_000],
      connections: 32,
      segments: true,
      seed: 1,
    })
  })
  test('PostgreSQL URL, one size, SEGMENTS=off', () => {
    const c = parseBenchConfig({
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/x',
      BENCH_PRELOAD: '1000000',
      SEGMENTS: 'off',
      BENCH_SECONDS: '5',
    })
    assert.ok(c.ok)
    assert.equal(c.value.backend, 'postgres')
    assert.equal(c.value.postgresUrl, 'postgresql://postgres@127.0.0.1:5432/x')
    assert.deepEqual(c.value.preloads, [1_000_000])
    assert.equal(c.value.segments, false)
    assert.equal(c.value.seconds, 5)
  })
  test('sqlite: URL keeps SQLite (temp files)', () => {
    const c = parseBenchConfig({ DATABASE_URL: 'sqlite:./data/x.db', BENCH_PRELOAD: '0' })
    assert.ok(c.ok)
    assert.equal(c.value.backend, 'sqlite')
    assert.deepEqual(c.value.preloads, [0])
  })
  for (const [env, message] of [
    [{ BENCH_SECONDS: '0' }, /BENCH_SECONDS must be an integer from 1 to 600/],
    [{ BENCH_SECONDS: '601' }, /BENCH_SECONDS/],
    [{ BENCH_SECONDS: '2.5' }, /BENCH_SECONDS/],
    [{ BENCH_SECONDS: 'ten' }, /BENCH_SECONDS/],
    [{ BENCH_PRELOAD: '5000' }, /BENCH_PRELOAD must be 0, 1000000 or both/],
    [{ BENCH_PRELOAD: ' ' }, /BENCH_PRELOAD/],
    [{ SEGMENTS: 'no' }, /SEGMENTS must be on or off/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must be a postgres/],
    [{ BENCH_CONNECTIONS: '0' }, /BENCH_CONNECTIONS/],
  ] as const) {
    test(`refuses ${JSON.stringify(env)}`, () => {
      const c = parseBenchConfig(env)
      assert.equal(c.ok, false)
      assert.match(c.ok ? '' : c.error, message)
    })
  }
})
