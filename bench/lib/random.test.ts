import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createRandom, createZipf, scramble32 } from './random.js'

describe('createRandom', () => {
  test('same seed, same sequence; values in [0, 1)', () => {
    const a = createRandom(42)
    const b = createRandom(42)
    for (let i = 0; i < 1000; i++) {
      const x = a()
      assert.equal(x, b())
      assert.ok(x >= 0 && x < 1)
    }
  })
  test('different seeds differ', () => {
    assert.notEqual(createRandom(1)(), createRandom(2)())
  })
})

describe('scramble32', () => {
  test('is injective over a range (distinct user ids)', () => {
    const seen = new Set<number>()
    for (let i = 0; i < 200_000; i++) seen.add(scramble32(i))
    assert.equal(seen.size, 200_000)
  })
  test('stays within 32 bits', () => {
    for (const x of [0, 1, 2 ** 31, 2 ** 32 - 1]) {
      const y = scramble32(x)
      assert.ok(Number.isInteger(y) && y >= 0 && y < 2 ** 32)
    }
  })
})

describe('createZipf', () => {
  test('rank 0 is the most frequent and about twice rank 1 (s = 1)', () => {
    const sample = createZipf(30)
    const random = createRandom(7)
    const counts = new Array<number>(30).fill(0)
    for (let i = 0; i < 100_000; i++) counts[sample(random)]! += 1
    const [first, second] = counts as [number, number]
    assert.ok(first === Math.max(...counts))
    assert.ok(first / second > 1.8 && first / second < 2.2, `ratio ${first / second}`)
    assert.ok(counts.every((c) => c > 0))
  })
  test('never leaves 0..n-1', () => {
    const sample = createZipf(5)
    for (const u of [0, 1e-12, 0.5, 0.999999999]) {
      const r = sample(() => u)
      assert.ok(r >= 0 && r < 5)
    }
  })
})
