import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { inWindow, parseDateValue } from '../core/date.js'
import { compareNumber, parseNumericText, type NumericOp } from '../core/segment.js'
import { DATE_VALUES } from './test-conditions.js'
import { hasBit, type Bitset } from './bitset.js'
import { PackedColumn } from './packed-column.js'

const CAPACITY = 64

function members(set: Bitset, bits: number): number[] {
  const out: number[] = []
  for (let o = 0; o < bits; o++) if (hasBit(set, o)) out.push(o)
  return out
}

function matching(model: Map<number, string>, test: (v: string) => boolean): number[] {
  return [...model]
    .filter(([, v]) => test(v))
    .map(([o]) => o)
    .sort((a, b) => a - b)
}

/** Compares every select against a Map of ordinal → value. */
function check(column: PackedColumn, model: Map<number, string>, probes: readonly string[]): void {
  const bits = CAPACITY
  assert.equal(column.present, model.size)
  assert.deepEqual(
    members(column.selectPresent(bits), bits),
    matching(model, () => true),
  )
  for (const p of probes) {
    assert.deepEqual(
      members(column.selectEqual(p, bits), bits),
      matching(model, (v) => v === p),
      `eq ${p}`,
    )
    assert.deepEqual(
      members(column.selectContaining(p, bits), bits),
      matching(model, (v) => v.includes(p)),
      `contains ${p}`,
    )
    assert.deepEqual(
      members(column.selectStartingWith(p, bits), bits),
      matching(model, (v) => v.startsWith(p)),
      `starts_with ${p}`,
    )
  }
  const short = probes.slice(0, 3)
  assert.deepEqual(
    members(column.selectOneOf(short, bits), bits),
    matching(model, (v) => short.includes(v)),
  )
  // Past 16 values the set is matched by hashing instead of searching.
  const long = [...probes, ...Array.from({ length: 20 }, (_, i) => `pad${i}`)]
  assert.deepEqual(
    members(column.selectOneOf(long, bits), bits),
    matching(model, (v) => long.includes(v)),
  )
  for (const op of ['gt', 'gte', 'lt', 'lte'] as NumericOp[]) {
    for (const bound of [-1, 0, 2.5, 10]) {
      const expected = matching(model, (v) => {
        const n = parseNumericText(v)
        return n !== undefined && compareNumber(n, op, bound)
      })
      assert.deepEqual(members(column.selectNumeric(op, bound, bits), bits), expected, `${op} ${bound}`)
    }
  }
  const day = Date.UTC(2025, 2, 1)
  for (const w of [
    { from: -Infinity, to: Infinity, fromDay: -Infinity, toDay: Infinity },
    { from: day + 9.5 * 3_600_000, to: day + 9.5 * 3_600_000 + 1000, fromDay: 0, toDay: 0 },
    { from: 0, to: 0, fromDay: day / 86_400_000 - 1, toDay: day / 86_400_000 + 1 },
  ]) {
    assert.deepEqual(
      members(column.selectDate(w, bits), bits),
      matching(model, (v) => inWindow(parseDateValue(v), w)),
      `date ${JSON.stringify(w)}`,
    )
  }
}

test('a packed column answers every operator like a brute-force scan, through updates and clears (property)', () => {
  const value = fc.oneof(
    fc.constantFrom('a', 'ab', 'b', 'abc', '1', '2.5', '10', '-1', '01', 'é', '日本', '😀x', 'x😀', '0', '1e1'),
    fc.constantFrom(...DATE_VALUES),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).filter((v) => !v.includes('\0')),
  )
  const op = fc.tuple(fc.integer({ min: 0, max: CAPACITY - 1 }), fc.option(value, { freq: 4 }))
  // Parts of 64 (one part), 7 and 1 user(s): values on both sides of part boundaries.
  fc.assert(
    fc.property(
      fc.array(op, { maxLength: 120 }),
      fc.array(value, { maxLength: 4 }),
      fc.constantFrom(64, 7, 1),
      (ops, extra, part) => {
        const column = new PackedColumn('a', part === 64 ? CAPACITY : 8, part)
        column.grow(CAPACITY)
        const model = new Map<number, string>()
        for (const [o, v] of ops) {
          column.set(o, v ?? undefined)
          if (v === null) model.delete(o)
          else model.set(o, v)
        }
        check(
          column,
          model,
          ['a', 'b', 'ab', '1', '😀', '日', '', 'zz', '\0', ...extra, ...model.values()].slice(0, 12),
        )
      },
    ),
    { numRuns: 300 },
  )
})

test('compaction keeps every current value and drops the overwritten ones', () => {
  const column = new PackedColumn('ts', 1024)
  const model = new Map<number, string>()
  // ~4 MB of overwritten values over 1000 users: several compactions.
  for (let round = 0; round < 200; round++) {
    for (let o = 0; o < 1000; o++) {
      const v = `2026-11-29T23:${String(round).padStart(3, '0')}:${o}-${'x'.repeat(10)}`
      column.set(o, v)
      model.set(o, v)
    }
    if (round % 50 === 7) {
      for (let o = 0; o < 1000; o += 7) {
        column.set(o, undefined)
        model.delete(o)
      }
    }
  }
  assert.equal(column.present, model.size)
  assert.ok(column.memoryBytes() < 2_000_000, `compacted: ${column.memoryBytes()} bytes`)
  const sample = model.get(500) as string
  assert.deepEqual(members(column.selectEqual(sample, 1024), 1024), [500])
  assert.equal(members(column.selectContaining('23:199:', 1024), 1024).length, model.size)
  assert.equal(members(column.selectContaining('23:198:', 1024), 1024).length, 0)
})

test('setting the same value again appends nothing', () => {
  const column = new PackedColumn('a', 8)
  column.set(1, 'same')
  const bytes = column.memoryBytes()
  for (let i = 0; i < 100_000; i++) column.set(1, 'same')
  assert.equal(column.memoryBytes(), bytes)
  assert.deepEqual(members(column.selectEqual('same', 8), 8), [1])
})
