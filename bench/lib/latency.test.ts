import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { percentile, summarizeLatencies } from './latency.js'

describe('percentile', () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
  test('nearest rank', () => {
    assert.equal(percentile(sorted, 50), 50)
    assert.equal(percentile(sorted, 99), 99)
    assert.equal(percentile(sorted, 100), 100)
    assert.equal(percentile(sorted, 0), 1)
    assert.equal(percentile([7], 99), 7)
  })
  test('NaN without samples; out-of-range p throws', () => {
    assert.ok(Number.isNaN(percentile([], 50)))
    assert.throws(() => percentile(sorted, 101), RangeError)
    assert.throws(() => percentile(sorted, Number.NaN), RangeError)
  })
})

describe('summarizeLatencies', () => {
  test('sorts unsorted samples numerically (not as strings)', () => {
    const s = summarizeLatencies([100, 9, 20, 3, 1000])
    assert.equal(s.count, 5)
    assert.equal(s.p50, 20)
    assert.equal(s.p99, 1000)
    assert.equal(s.max, 1000)
    assert.equal(s.mean, 226.4)
  })
  test('empty input', () => {
    const s = summarizeLatencies([])
    assert.equal(s.count, 0)
    assert.ok(Number.isNaN(s.p50) && Number.isNaN(s.max) && Number.isNaN(s.mean))
  })
})
