import assert from 'node:assert/strict'
import { test } from 'node:test'
import { divideMemoryBudget } from './cluster.js'

test('the segment index budget is the total for all worker processes, given or default, never N times it', () => {
  assert.deepEqual(divideMemoryBudget('1000', 4, 6000), { SEGMENT_INDEX_MEMORY_MB: '250' })
  assert.deepEqual(divideMemoryBudget(undefined, 4, 6000), { SEGMENT_INDEX_MEMORY_MB: '1500' })
  assert.deepEqual(divideMemoryBudget('  ', 3, 6000), { SEGMENT_INDEX_MEMORY_MB: '2000' })
  assert.deepEqual(divideMemoryBudget('3', 8, 6000), { SEGMENT_INDEX_MEMORY_MB: '1' }, 'at least 1 MiB each')
  // A malformed value is passed through untouched, so each worker's configuration check refuses it.
  assert.deepEqual(divideMemoryBudget('lots', 2, 6000), {})
})
