import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isRetryableStatus, parseRetryAfter, resolveRetryOptions, retryDelay } from './retry.js'

describe('isRetryableStatus', () => {
  test('408, 425, 429 and every 5xx are retried', () => {
    for (const s of [408, 425, 429, 500, 502, 503, 504, 599]) assert.equal(isRetryableStatus(s), true, String(s))
  })
  test('other 4xx are the client’s mistake and never retried', () => {
    for (const s of [400, 401, 403, 404, 405, 409, 413, 415, 422, 431])
      assert.equal(isRetryableStatus(s), false, String(s))
  })
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-29T12:00:00Z')
  test('delay-seconds', () => {
    assert.equal(parseRetryAfter('0', now), 0)
    assert.equal(parseRetryAfter(' 3 ', now), 3000)
  })
  test('an HTTP date, relative to now; a past date means no wait', () => {
    assert.equal(parseRetryAfter('Sun, 29 Nov 2026 12:00:05 GMT', now), 5000)
    assert.equal(parseRetryAfter('Sun, 29 Nov 2026 11:00:00 GMT', now), 0)
  })
  test('absent or unreadable values are ignored', () => {
    for (const v of [null, undefined, '', 'soon', '-1', '1.5'])
      assert.equal(parseRetryAfter(v, now), undefined, String(v))
  })
})

describe('retryDelay', () => {
  const o = resolveRetryOptions({ baseDelayMs: 100, maxDelayMs: 1000 })
  test('full jitter: uniform below a ceiling that doubles per attempt, capped', () => {
    assert.equal(
      retryDelay(1, o, undefined, () => 0.999),
      99,
    )
    assert.equal(
      retryDelay(2, o, undefined, () => 0.999),
      199,
    )
    assert.equal(
      retryDelay(3, o, undefined, () => 0.5),
      200,
    )
    assert.equal(
      retryDelay(10, o, undefined, () => 0.999),
      999,
    )
    assert.equal(
      retryDelay(3, o, undefined, () => 0),
      0,
    )
  })
  test('never shorter than Retry-After', () => {
    assert.equal(
      retryDelay(1, o, 2000, () => 0.5),
      2000,
    )
    assert.equal(
      retryDelay(5, o, 10, () => 0.5),
      500,
    )
  })
})

describe('resolveRetryOptions', () => {
  test('defaults, and nonsense refused', () => {
    assert.deepEqual(resolveRetryOptions(undefined), {
      maxAttempts: 10,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      maxRetryAfterMs: 300_000,
    })
    assert.throws(() => resolveRetryOptions({ maxAttempts: 0 }), RangeError)
    assert.throws(() => resolveRetryOptions({ baseDelayMs: -1 }), RangeError)
  })
})
