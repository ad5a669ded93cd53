import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createMemoryOutput, formatTable } from './output.js'

test('formatTable aligns columns to the widest cell and trims trailing space', () => {
  assert.deepEqual(
    formatTable([
      ['ID', 'LABEL', 'X'],
      ['key_1', '-', 'a'],
      ['k', 'long label', ''],
    ]),
    ['ID     LABEL       X', 'key_1  -           a', 'k      long label'],
  )
  assert.deepEqual(formatTable([]), [])
})

test('createMemoryOutput keeps stdout and stderr apart', () => {
  const out = createMemoryOutput()
  out.out('a')
  out.err('b')
  out.out('c')
  assert.deepEqual(out.stdout, ['a', 'c'])
  assert.deepEqual(out.stderr, ['b'])
})
