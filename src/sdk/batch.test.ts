import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { MAX_FIELDS, MAX_USERS } from '../core/limits.js'
import { BatchPacker, splitRecord, type PackedBatch, type RecordChunk } from './batch.js'

function chunksOf(record: unknown): readonly RecordChunk[] {
  const r = splitRecord(record)
  assert.ok(r.ok, r.ok ? '' : r.reason)
  return r.chunks
}

/** Feeds records through a packer and hands every batch out at once, completing each. */
function packAll(records: readonly unknown[], packer = new BatchPacker()): PackedBatch[] {
  records.forEach((rec, i) => {
    for (const c of chunksOf(rec)) packer.add(i, c)
  })
  packer.flush()
  const out: PackedBatch[] = []
  for (let b = packer.takeReady(); b !== undefined; b = packer.takeReady()) {
    out.push(b)
    packer.complete(b)
  }
  return out
}

describe('splitRecord', () => {
  test('a narrow record is one chunk with user_id first, in key order', () => {
    assert.deepEqual(chunksOf({ plan: 'pro', user_id: 'u1', age: 30, vip: true }), [
      { names: ['user_id', 'plan', 'age', 'vip'], values: ['u1', 'pro', 30, true] },
    ])
  })

  test('undefined attributes are left out; "" is kept (it clears)', () => {
    assert.deepEqual(chunksOf({ user_id: 'u1', a: undefined, b: '' }), [
      { names: ['user_id', 'b'], values: ['u1', ''] },
    ])
  })

  test('a record with only user_id is one chunk (creates the user)', () => {
    assert.deepEqual(chunksOf({ user_id: 'u1' }), [{ names: ['user_id'], values: ['u1'] }])
  })

  test('49 attributes fit one request; 50 need two, each with user_id', () => {
    const wide = (n: number): Record<string, string> => {
      const r: Record<string, string> = { user_id: 'u' }
      for (let i = 0; i < n; i++) r[`a${i}`] = String(i)
      return r
    }
    assert.equal(chunksOf(wide(MAX_FIELDS - 1)).length, 1)
    const two = chunksOf(wide(MAX_FIELDS))
    assert.equal(two.length, 2)
    assert.equal(two[0]?.names.length, MAX_FIELDS)
    assert.deepEqual(two[1]?.names, ['user_id', 'a49'])
    assert.deepEqual(two[1]?.values, ['u', '49'])
    const many = chunksOf(wide(200))
    assert.equal(many.length, 5)
    for (const c of many) {
      assert.ok(c.names.length <= MAX_FIELDS)
      assert.equal(c.names[0], 'user_id')
      assert.equal(c.values[0], 'u')
    }
    assert.equal(
      many.reduce((n, c) => n + c.names.length - 1, 0),
      200,
    )
  })

  test('the server rules apply: each broken rule is a reason, not an exception', () => {
    const cases: [unknown, RegExp][] = [
      [null, /must be an object/],
      [['u1'], /must be an object/],
      [{ a: '1' }, /"user_id" is missing/],
      [{ user_id: '' }, /user_id must be a non-empty string, got an empty string/],
      [{ user_id: 7 }, /user_id must be a non-empty string, got a number/],
      [{ user_id: 'u', a: null }, /field "a": must be a string, number or boolean, got null/],
      [{ user_id: 'u', a: { x: 1 } }, /field "a": .*got an object/],
      [{ user_id: 'u', a: 'x'.repeat(129) }, /field "a": value is longer than 128 characters/],
      [{ user_id: 'u', a: '\ud800' }, /lone UTF-16 surrogate/],
      [{ user_id: 'u', ['n'.repeat(51)]: '1' }, /attribute name "n+…" is longer than 50 characters/],
      [{ user_id: 'u', '': '1' }, /attribute name "": must not be empty/],
    ]
    for (const [record, reason] of cases) {
      const r = splitRecord(record)
      assert.equal(r.ok, false, JSON.stringify(record))
      assert.match(r.ok ? '' : r.reason, reason)
    }
  })

  test('code points, not UTF-16 units: 128 emoji fit, 129 do not', () => {
    assert.equal(splitRecord({ user_id: 'u', a: '😀'.repeat(128) }).ok, true)
    assert.equal(splitRecord({ user_id: 'u', a: '😀'.repeat(129) }).ok, false)
  })

  test('__proto__ and constructor are ordinary attribute names', () => {
    const rec = Object.create(null) as Record<string, string>
    rec.user_id = 'u'
    rec['__proto__'] = 'p'
    rec['constructor' as string] = 'c'
    assert.deepEqual(chunksOf(rec), [{ names: ['user_id', '__proto__', 'constructor'], values: ['u', 'p', 'c'] }])
  })
})

describe('BatchPacker', () => {
  test('at most 100 rows per request, in input order', () => {
    const records = Array.from({ length: 250 }, (_, i) => ({ user_id: `u${i}`, a: String(i) }))
    const batches = packAll(records)
    assert.deepEqual(
      batches.map((b) => b.values.length),
      [MAX_USERS, MAX_USERS, 50],
    )
    assert.deepEqual(
      batches.flatMap((b) => b.rowIndexes),
      records.map((_, i) => i),
    )
  })

  test('rows are grouped by field set: no request carries a "" the record did not have', () => {
    const records = [
      { user_id: 'u1', a: '1' },
      { user_id: 'u2', b: '2' },
      { user_id: 'u3', a: '3' },
      { user_id: 'u4', a: '4', b: '' },
    ]
    const batches = packAll(records)
    assert.deepEqual(
      batches.map((b) => [b.fieldNames, b.values]),
      [
        [
          ['user_id', 'a'],
          [
            ['u1', '1'],
            ['u3', '3'],
          ],
        ],
        [['user_id', 'b'], [['u2', '2']]],
        [['user_id', 'a', 'b'], [['u4', '4', '']]],
      ],
    )
  })

  test('wide records: a 60-column file packs into two request shapes of 100 users', () => {
    const records = Array.from({ length: 200 }, (_, i) => {
      const r: Record<string, string> = { user_id: `u${i}` }
      for (let c = 1; c < 60; c++) r[`c${c}`] = `${i}-${c}`
      return r
    })
    const batches = packAll(records)
    assert.equal(batches.length, 4)
    for (const b of batches) {
      assert.equal(b.values.length, 100)
      assert.ok(b.fieldNames.length <= MAX_FIELDS)
    }
    assert.deepEqual(batches.map((b) => b.fieldNames.length).sort(), [11, 11, 50, 50])
  })

  test('the bounds seal partly filled batches, so memory stays bounded with many field sets', () => {
    const packer = new BatchPacker({ maxOpenRows: 10, maxOpenBatches: 3 })
    for (let i = 0; i < 100; i++) {
      packer.add(i, { names: ['user_id', `f${i % 7}`], values: [`u${i}`, 'x'] })
      assert.ok(packer.openCount <= 3)
    }
    assert.ok(packer.sealedCount > 0)
  })

  test('a later row that touches the same attribute of a user waits for the earlier request', () => {
    const packer = new BatchPacker()
    packer.add(0, { names: ['user_id', 'a'], values: ['u1', 'old'] })
    packer.add(1, { names: ['user_id', 'a', 'b'], values: ['u1', 'new', 'x'] })
    packer.flush()
    const first = packer.takeReady()
    assert.deepEqual(first?.values, [['u1', 'old']])
    assert.equal(packer.takeReady(), undefined, 'the second batch must wait while the first is in flight')
    packer.complete(first!)
    assert.deepEqual(packer.takeReady()?.values, [['u1', 'new', 'x']])
  })

  test('disjoint attributes of one user (the chunks of a wide row) may go together', () => {
    const packer = new BatchPacker()
    packer.add(0, { names: ['user_id', 'a'], values: ['u1', '1'] })
    packer.add(0, { names: ['user_id', 'b'], values: ['u1', '2'] })
    packer.flush()
    assert.ok(packer.takeReady())
    assert.ok(packer.takeReady(), 'no shared attribute, no wait')
  })

  test('a row never joins an open batch older than one it must wait for (no cycles, order kept)', () => {
    const packer = new BatchPacker()
    packer.add(0, { names: ['user_id', 'a'], values: ['u1', '1'] }) // batch A
    packer.add(1, { names: ['user_id', 'a', 'b'], values: ['u1', '2', 'x'] }) // batch B waits for A
    packer.add(2, { names: ['user_id', 'a'], values: ['u1', '3'] }) // must not join A: would land before row 1
    packer.flush()
    const order: unknown[] = []
    for (;;) {
      const b = packer.takeReady()
      if (b === undefined) break
      order.push(b.values)
      packer.complete(b)
    }
    assert.deepEqual(order, [[['u1', '1']], [['u1', '2', 'x']], [['u1', '3']]])
  })

  test('property: sending ready batches in any order and any concurrency gives the sequential final state', () => {
    const row = fc.record({
      user: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
      attrs: fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.constantFrom('', 'x', 'y', 'z'), {
        minKeys: 1,
      }),
    })
    fc.assert(
      fc.property(
        fc.array(row, { maxLength: 60 }),
        fc.integer({ min: 1, max: 6 }),
        fc.infiniteStream(fc.nat()),
        (rows, maxOpenBatches, picks) => {
          const expected = new Map<string, Map<string, string>>()
          const apply = (
            state: Map<string, Map<string, string>>,
            names: readonly string[],
            values: readonly unknown[],
          ) => {
            const user = values[0] as string
            const attrs = state.get(user) ?? new Map<string, string>()
            state.set(user, attrs)
            names.forEach((n, i) => {
              if (i === 0) return
              if (values[i] === '') attrs.delete(n)
              else attrs.set(n, String(values[i]))
            })
          }
          for (const r of rows)
            apply(expected, ['user_id', ...Object.keys(r.attrs)], [r.user, ...Object.values(r.attrs)])

          const packer = new BatchPacker({ maxOpenBatches, maxOpenRows: 7 })
          const actual = new Map<string, Map<string, string>>()
          const inFlight: PackedBatch[] = []
          const it = picks[Symbol.iterator]()
          const step = (): void => {
            // Randomly either start a ready batch or finish (apply) one in flight, like a concurrent sender.
            const ready = packer.takeReady()
            if (ready !== undefined && (inFlight.length === 0 || it.next().value % 2 === 0)) {
              inFlight.push(ready)
              return
            }
            if (ready !== undefined) inFlight.push(ready)
            if (inFlight.length === 0) return
            const done = inFlight.splice(it.next().value % inFlight.length, 1)[0]!
            for (const v of done.values) apply(actual, done.fieldNames, v)
            packer.complete(done)
          }
          rows.forEach((r, i) => {
            packer.add(i, { names: ['user_id', ...Object.keys(r.attrs)], values: [r.user, ...Object.values(r.attrs)] })
            step()
          })
          packer.flush()
          while (packer.sealedCount > 0 || inFlight.length > 0) step()
          assert.deepEqual(actual, expected)
        },
      ),
      { numRuns: 300 },
    )
  })
})
