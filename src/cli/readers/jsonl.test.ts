import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { readJsonlRows } from './jsonl.js'
import type { SourceRow } from './source-row.js'

async function read(text: string, blank: 'clear' | 'skip' = 'clear'): Promise<SourceRow[]> {
  const bytes = Buffer.from(text)
  // Split inside multi-byte characters on purpose.
  const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 23), bytes.subarray(23)]
  const rows: SourceRow[] = []
  for await (const row of readJsonlRows(Readable.from(chunks), { blank })) rows.push(row)
  return rows
}

describe('readJsonlRows', () => {
  test('one object per line, CRLF, BOM, unicode split across chunks, blank lines skipped, last line unterminated', async () => {
    const rows = await read('\ufeff{"user_id":"u1","city":"東京","n":3}\r\n\n{"user_id":"u2","v":true,"__proto__":"p"}')
    assert.deepEqual(
      rows.map((r) => [r.line, r.record && Object.entries(r.record)]),
      [
        [
          1,
          [
            ['user_id', 'u1'],
            ['city', '東京'],
            ['n', 3],
          ],
        ],
        [
          3,
          [
            ['user_id', 'u2'],
            ['v', true],
            ['__proto__', 'p'],
          ],
        ],
      ],
    )
  })

  test('bad lines are reported with their line number and the raw text', async () => {
    const rows = await read('{"user_id":"u1"}\n{oops\n[1,2]\nnull\n{"user_id":"u2"}\n')
    assert.deepEqual(
      rows.map((r) => [r.line, r.error?.replace(/:.*/, ''), r.raw]),
      [
        [1, undefined, '{"user_id":"u1"}'],
        [2, 'not valid JSON', '{oops'],
        [3, 'must be a JSON object with a "user_id"', '[1,2]'],
        [4, 'must be a JSON object with a "user_id"', 'null'],
        [5, undefined, '{"user_id":"u2"}'],
      ],
    )
  })

  test('"" follows the blank policy', async () => {
    const text = '{"user_id":"u1","a":"","b":"x"}\n'
    assert.deepEqual({ ...(await read(text, 'clear'))[0]?.record }, { user_id: 'u1', a: '', b: 'x' })
    assert.deepEqual({ ...(await read(text, 'skip'))[0]?.record }, { user_id: 'u1', b: 'x' })
  })
})
