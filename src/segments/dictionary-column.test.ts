import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DictionaryColumn } from './dictionary-column.js'

function bruteForce(column: DictionaryColumn, needle: string): number[] {
  const out: number[] = []
  for (let c = 1; c < column.values.length; c++) {
    if (column.countOf(c) > 0 && (column.values[c] as string).includes(needle)) out.push(c)
  }
  return out
}

function marked(mark: Uint8Array): number[] {
  const out: number[] = []
  mark.forEach((m, c) => m === 1 && out.push(c))
  return out
}

test('substring search over joined chunks agrees with testing each value, across chunks and growth', () => {
  const column = new DictionaryColumn('email', 1 << 18)
  let ordinal = 0
  const add = (n: number) => {
    for (let i = 0; i < n; i++, ordinal++) column.set(ordinal, `v${ordinal.toString(36)}@x${ordinal % 7}\u0000z`)
  }
  add(150_000)
  for (const needle of ['@x3', 'v1', 'zz', '0@', 'z', 'v2bi', '\u0000z', 'x6\u0000']) {
    assert.deepEqual(marked(column.markContaining(needle)), bruteForce(column, needle), needle)
  }
  add(70_000)
  column.set(5, undefined)
  column.set(6, 'v5@x5\u0000z')
  for (const needle of ['@x3', 'v5@', 'v4rs']) {
    assert.deepEqual(marked(column.markContaining(needle)), bruteForce(column, needle), needle)
  }
})
