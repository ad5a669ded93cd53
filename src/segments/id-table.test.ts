import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { compareCodePoints } from '../core/text.js'
import { encodeId, IdTable } from './id-table.js'
import { ProjectIndex } from './project-index.js'

const id = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
  fc.constantFrom('a', 'b', 'ab', 'é', '日本', '😀', 'u00000001', '\uffff', '\u{10000}'),
)

test('ids map to ordinals and back, ordered by code point, across chunk boundaries (property)', () => {
  fc.assert(
    fc.property(fc.array(id, { maxLength: 300 }), fc.constantFrom(16, 64, 1 << 20), (ids, chunkBytes) => {
      const table = new IdTable(chunkBytes)
      const model = new Map<string, number>()
      for (const x of ids) {
        const o = table.lookup(x)
        assert.equal(o, model.get(x) ?? -1)
        if (o < 0) model.set(x, table.add(x))
      }
      assert.equal(table.size, model.size)
      for (const [x, o] of model) {
        assert.equal(table.lookup(x), o)
        assert.equal(table.idOf(o), x)
      }
      const all = [...model.keys()]
      for (let i = 0; i + 1 < all.length; i++) {
        const a = model.get(all[i] as string) as number
        const b = model.get(all[i + 1] as string) as number
        assert.equal(
          Math.sign(table.compare(a, b)),
          Math.sign(compareCodePoints(all[i] as string, all[i + 1] as string)),
        )
        assert.equal(Math.sign(table.compareTo(a, encodeId(all[i + 1] as string))), Math.sign(table.compare(a, b)))
      }
      assert.equal(table.lookup('never-added-\u0001'), -1)
    }),
    { numRuns: 200 },
  )
})

test('the table grows past many collisions-prone ids and keeps every one', () => {
  const table = new IdTable(4096)
  for (let i = 0; i < 50_000; i++) assert.equal(table.add(`u${i}`), i)
  for (let i = 0; i < 50_000; i += 7) assert.equal(table.lookup(`u${i}`), i)
  assert.equal(table.lookup('u50000'), -1)
})

test('pages walk user ids in code point order whatever order they arrived in (sorted load, tail, merges)', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(id, { maxLength: 200 }),
      fc.array(fc.uniqueArray(id, { maxLength: 40 }), { maxLength: 6 }),
      fc.integer({ min: 1, max: 7 }),
      (first, later, limit) => {
        const index = new ProjectIndex(undefined, 32)
        const sortedFirst = [...first].sort(compareCodePoints)
        const held = new Set<string>()
        const walk = () => {
          const expected = [...held].sort(compareCodePoints)
          const all = index.evaluate({ kind: 'all', of: [] })
          const got: string[] = []
          let after: string | undefined
          for (;;) {
            const page = index.page(all, after, limit)
            got.push(...page.userIds)
            if (!page.more) break
            after = page.userIds[page.userIds.length - 1]
          }
          assert.deepEqual(got, expected)
          // A cursor that is not a held id resumes right after where it would sort.
          const probe = 'm'
          assert.deepEqual(
            index.page(all, probe, 1000).userIds,
            expected.filter((x) => compareCodePoints(x, probe) > 0),
          )
        }
        for (const x of sortedFirst) {
          index.upsert(x, { a: '1' })
          held.add(x)
        }
        walk()
        for (const batch of later) {
          for (const x of batch) {
            index.upsert(x, { a: '2' })
            held.add(x)
          }
          walk()
        }
      },
    ),
    { numRuns: 150 },
  )
})

test('while the hash table doubles (old and new table both live), every id stays findable', () => {
  const table = new IdTable(1 << 16)
  let seed = 7
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
  for (let i = 0; i < 20_000; i++) {
    assert.equal(table.add(`id-${i}`), i)
    for (const j of [0, i >> 1, i, next() % (i + 1)])
      assert.equal(table.lookup(`id-${j}`), j, `id-${j} after ${i} adds`)
    assert.equal(table.lookup(`id-${i + 1}`), -1)
  }
  for (let i = 0; i < 20_000; i++) assert.equal(table.lookup(`id-${i}`), i)
})
