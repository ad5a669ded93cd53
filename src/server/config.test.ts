import { totalmem } from 'node:os'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_CONFIG, loadConfig } from './config.js'

describe('loadConfig', () => {
  test('defaults: 127.0.0.1:8080, SQLite in ./data, 8 MiB bodies, no TLS, frozen', () => {
    const c = loadConfig({})
    assert.deepEqual(c, DEFAULT_CONFIG)
    assert.equal(c.port, 8080)
    assert.equal(c.host, '127.0.0.1')
    assert.equal(c.databaseUrl, 'sqlite:./data/traitbase.db')
    assert.equal(c.bodyLimit, 8 * 1024 * 1024)
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.timeouts))
  })

  test('8 MiB holds the largest body the spec allows even fully \\u-escaped', () => {
    // 100 rows × 50 values × 128 code points, each astral code point escaped as a 12-byte surrogate pair.
    const worst = 100 * 50 * (128 * 6 * 2 + 3) + 50 * (50 * 6 * 2 + 3) + 100
    assert.ok(worst <= DEFAULT_CONFIG.bodyLimit, `${worst} bytes`)
  })

  test('SEGMENTS: on by default, off turns it off, anything else is refused', () => {
    assert.equal(loadConfig({}).segments, true)
    assert.equal(loadConfig({ SEGMENTS: 'OFF' }).segments, false)
    assert.equal(loadConfig({ SEGMENTS: 'on' }).segments, true)
    assert.throws(() => loadConfig({ SEGMENTS: 'no' }), /SEGMENTS must be on or off/)
    assert.equal(loadConfig({}).segmentIndexIdleMinutes, 30)
    assert.throws(() => loadConfig({ SEGMENT_INDEX_IDLE_MINUTES: '-1' }), /SEGMENT_INDEX_IDLE_MINUTES/)
  })

  test('SEGMENT_INDEX_MEMORY_MB: a quarter of the machine by default, a positive integer otherwise', () => {
    assert.equal(loadConfig({}).segmentIndexMemoryMb, Math.max(64, Math.floor(totalmem() / 2 ** 20 / 4)))
    assert.equal(loadConfig({ SEGMENT_INDEX_MEMORY_MB: '512' }).segmentIndexMemoryMb, 512)
    for (const bad of ['0', '-5', '1.5', 'lots']) {
      assert.throws(() => loadConfig({ SEGMENT_INDEX_MEMORY_MB: bad }), /SEGMENT_INDEX_MEMORY_MB must be an integer/)
    }
  })

  test('REDIS_URL, DATABASE_* limits and WEB_CONCURRENCY: defaults and bad values', () => {
    const d = loadConfig({})
    assert.equal(d.redisUrl, undefined)
    assert.deepEqual(
      { ...d.database },
      { poolSize: 12, connectTimeoutMs: 5000, statementTimeoutMs: 15000, pgbouncer: false },
    )
    assert.equal(d.workers, 1)
    assert.throws(() => loadConfig({ REDIS_URL: 'http://x' }), /REDIS_URL must be redis:/)
    assert.throws(() => loadConfig({ DATABASE_POOL_SIZE: '0' }), /DATABASE_POOL_SIZE must be an integer from 1/)
    assert.throws(() => loadConfig({ WEB_CONCURRENCY: 'two' }), /WEB_CONCURRENCY must be an integer/)
    assert.throws(() => loadConfig({ DATABASE_PGBOUNCER: 'yes' }), /DATABASE_PGBOUNCER must be/)
  })

  test('reads every variable', () => {
    const c = loadConfig({
      PORT: '0',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://u@db:5432/x',
      BODY_LIMIT: '16MiB',
      TLS_CERT: '/c.pem',
      TLS_KEY: '/k.pem',
      LOG_LEVEL: 'WARN',
      TRUST_PROXY: 'true',
      SEGMENTS: 'off',
      SEGMENT_INDEX_IDLE_MINUTES: '0',
      SEGMENT_INDEX_MEMORY_MB: '2048',
      RATE_LIMIT: '600',
      REQUEST_TIMEOUT_MS: '5000',
      HEADERS_TIMEOUT_MS: '2000',
      CONNECTION_TIMEOUT_MS: '5000',
      KEEP_ALIVE_TIMEOUT_MS: '4000',
      SHUTDOWN_TIMEOUT_MS: '0',
      TRAITBASE_ADMIN_PASSWORD: ' spaced secret ',
      ADMIN_SESSION_HOURS: '2',
      REQUEST_LOG: 'off',
      REQUEST_LOG_MAX_PER_PROJECT: '500',
      REQUEST_LOG_DAYS: '3',
      REDIS_URL: 'redis://127.0.0.1:6379/2',
      DATABASE_POOL_SIZE: '4',
      DATABASE_CONNECT_TIMEOUT_MS: '1500',
      DATABASE_STATEMENT_TIMEOUT_MS: '0',
      DATABASE_PGBOUNCER: '1',
      WEB_CONCURRENCY: '3',
    })
    assert.deepEqual(
      { ...c, timeouts: { ...c.timeouts }, admin: { ...c.admin }, database: { ...c.database } },
      {
        port: 0,
        host: '0.0.0.0',
        databaseUrl: 'postgresql://u@db:5432/x',
        bodyLimit: 16 * 1024 * 1024,
        tlsCert: '/c.pem',
        tlsKey: '/k.pem',
        logLevel: 'warn',
        trustProxy: true,
        segments: false,
        segmentIndexIdleMinutes: 0,
        segmentIndexMemoryMb: 2048,
        rateLimitPerMinute: 600,
        timeouts: {
          requestMs: 5000,
          headersMs: 2000,
          connectionMs: 5000,
          keepAliveMs: 4000,
          checkIntervalMs: 1000,
          shutdownMs: 0,
        },
        admin: {
          password: ' spaced secret ',
          sessionHours: 2,
          requestLog: false,
          requestLogMaxPerProject: 500,
          requestLogDays: 3,
        },
        redisUrl: 'redis://127.0.0.1:6379/2',
        database: { poolSize: 4, connectTimeoutMs: 1500, statementTimeoutMs: 0, pgbouncer: true },
        workers: 3,
      },
    )
    assert.throws(() => loadConfig({ REQUEST_LOG: 'maybe' }), /REQUEST_LOG must be on or off/)
    assert.throws(() => loadConfig({ REQUEST_LOG_MAX_PER_PROJECT: '0' }), /REQUEST_LOG_MAX_PER_PROJECT/)
    assert.equal(loadConfig({ BODY_LIMIT: '1048576' }).bodyLimit, 1048576)
    assert.equal(loadConfig({ BODY_LIMIT: '2 KiB' }).bodyLimit, 2048)
    assert.equal(loadConfig({ PORT: '  ' }).port, 8080, 'blank means default')
  })

  test('a long keep-alive timeout raises the default connection timeout above it', () => {
    assert.equal(loadConfig({ KEEP_ALIVE_TIMEOUT_MS: '300000' }).timeouts.connectionMs, 301000)
    assert.ok(DEFAULT_CONFIG.timeouts.connectionMs > DEFAULT_CONFIG.timeouts.keepAliveMs)
  })

  test('a short request timeout lowers the default headers timeout with it', () => {
    const c = loadConfig({ REQUEST_TIMEOUT_MS: '500' })
    assert.equal(c.timeouts.headersMs, 500)
    assert.ok(c.timeouts.checkIntervalMs <= 500)
  })

  test('bad values stop startup with a message naming each variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ PORT: '80a' }, /PORT must be an integer from 0 to 65535, got "80a"/],
      [{ PORT: '65536' }, /PORT/],
      [{ PORT: '-1' }, /PORT/],
      [{ DATABASE_URL: 'mysql://x' }, /Unsupported DATABASE_URL/],
      [{ DATABASE_URL: 'sqlite:' }, /needs a path/],
      [{ BODY_LIMIT: 'lots' }, /BODY_LIMIT must be a size/],
      [{ BODY_LIMIT: '100' }, /BODY_LIMIT/],
      [{ BODY_LIMIT: '2GiB' }, /BODY_LIMIT/],
      [{ TLS_CERT: '/c.pem' }, /TLS_CERT and TLS_KEY must be set together/],
      [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
      [{ TRUST_PROXY: 'yes' }, /TRUST_PROXY/],
      [{ HEADERS_TIMEOUT_MS: '40000' }, /must not exceed REQUEST_TIMEOUT_MS/],
      [{ REQUEST_TIMEOUT_MS: '1.5' }, /REQUEST_TIMEOUT_MS/],
      [{ CONNECTION_TIMEOUT_MS: '5000', KEEP_ALIVE_TIMEOUT_MS: '5000' }, /must exceed KEEP_ALIVE_TIMEOUT_MS/],
    ]
    for (const [env, message] of bad) assert.throws(() => loadConfig(env), message, JSON.stringify(env))
  })

  test('every problem is reported at once', () => {
    assert.throws(
      () => loadConfig({ PORT: 'x', LOG_LEVEL: 'y' }),
      (e: Error) => /PORT/.test(e.message) && /LOG_LEVEL/.test(e.message),
    )
  })
})
