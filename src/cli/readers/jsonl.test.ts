import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { InputFileError, InvalidUtf8Error } from './input-error.js'
import { readJsonlRows, repeatedKey } from './jsonl.js'
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

  test('a key repeated in one object is a bad row naming the key (JSON.parse would keep the last silently)', async () => {
    const rows = await read(
      '{"user_id":"u1","a":"1","a":"2"}\n{"user_id":"u2","\\u0062":"1","b":"2"}\n{"user_id":"u3"}\n',
    )
    assert.deepEqual(
      rows.map((r) => [r.line, r.record?.user_id, r.error]),
      [
        [1, undefined, 'key "a" appears more than once'],
        [2, undefined, 'key "b" appears more than once'],
        [3, 'u3', undefined],
      ],
    )
  })

  test('a first line that is not a JSON object stops the read: the file is not JSON Lines', async () => {
    for (const text of ['user_id,plan\nu1,pro\n', '\n\n["u1"]\n{"user_id":"u1"}\n', '\ufeff"x"\n']) {
      await assert.rejects(read(text), (e: unknown) => {
        assert.ok(e instanceof InputFileError, String(e))
        assert.match(
          e.describe('f.jsonl'),
          /^f\.jsonl line \d: not JSON Lines: the first line is not a JSON object; .*--format csv$/,
        )
        return true
      })
    }
    await assert.rejects(read('\n\n["u1"]\n'), (e: InputFileError) => e.line === 3)
  })

  test('bytes that are not UTF-8 stop the read after the lines before them', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"user_id":"u1"}\r\n{"user_id":"u2","city":"caf'),
      Buffer.from([0xe9, 0x22, 0x7d]),
    ])
    const rows: string[] = []
    await assert.rejects(
      async () => {
        for await (const row of readJsonlRows(Readable.from([bytes.subarray(0, 30), bytes.subarray(30)]), {
          blank: 'clear',
        }))
          rows.push(String(row.record?.user_id))
      },
      (e: unknown) => e instanceof InvalidUtf8Error && e.nearLine === 2 && e.offset === bytes.length - 3,
    )
    assert.deepEqual(rows, ['u1'])
  })

  test('a line over the size limit stops the read without holding the rest of the file', async () => {
    let pulled = 0
    async function* file(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"user_id":"u1"}\n{"user_id":"u2","a":"')
      for (let i = 0; i < 1000; i++) {
        pulled++
        yield Buffer.alloc(1000, 0x61)
      }
    }
    const rows: unknown[] = []
    await assert.rejects(
      async () => {
        for await (const row of readJsonlRows(file(), { blank: 'clear', maxLineBytes: 4096 })) rows.push(row)
      },
      (e: unknown) => e instanceof InputFileError && e.message === 'line 2: the line is over 4096 bytes (the limit)',
    )
    assert.equal(rows.length, 1)
    assert.ok(pulled < 10, `stopped after ${pulled} chunks`)
  })

  test('each row carries the byte offset where its line ends', async () => {
    const text = '{"user_id":"é"}\r\n\n{"user_id":"b"}\n{"user_id":"c"}'
    assert.deepEqual(
      (await read(text)).map((r) => r.bytes),
      [
        Buffer.byteLength('{"user_id":"é"}\r\n'),
        Buffer.byteLength('{"user_id":"é"}\r\n\n{"user_id":"b"}\n'),
        Buffer.byteLength(text),
      ],
    )
  })

  test('repeatedKey: colons and quotes inside values, escapes and nesting do not fool it', () => {
    const cases: [string, string | undefined][] = [
      ['{"user_id":"u","t":"10:00:00"}', undefined],
      ['{"user_id":"u","t":"10:00","t":"11:00"}', 't'],
      ['{"user_id":"u","q":"say \\"a\\":1","z":"\\\\"}', undefined],
      ['{"user_id":"u","q":"\\\\","q":1}', 'q'],
      ['{ "a" : 1 , "b" : 2 }', undefined],
      ['{"a":{"x":1,"x":2},"b":[{"c":1}]}', 'x'],
      ['{"a":{"x":1},"b":[{"x":1}]}', undefined],
      ['{}', undefined],
    ]
    for (const [text, expected] of cases) {
      assert.equal(repeatedKey(text, Object.keys(JSON.parse(text) as object).length), expected, text)
    }
  })
})
