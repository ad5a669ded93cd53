import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { InputFileError, readCsvRows, type CsvReadOptions } from './csv.js'
import type { SourceRow } from './source-row.js'

async function read(text: string, options: CsvReadOptions = { blank: 'clear' }): Promise<SourceRow[]> {
  const rows: SourceRow[] = []
  // Small chunks, so rows and quoted fields straddle chunk boundaries.
  const chunks =
    Buffer.from(text)
      .toString('latin1')
      .match(/[\s\S]{1,7}/g) ?? []
  for await (const row of readCsvRows(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), options)) {
    rows.push(row)
  }
  return rows
}
const plain = (r: SourceRow) => ({ line: r.line, record: r.record && { ...r.record }, error: r.error })

describe('readCsvRows', () => {
  test('RFC 4180 quoting, escaped quotes, embedded CRLF/LF, BOM and unicode; lines are where rows start', async () => {
    const rows = await read(
      '\ufeffuser_id,note,city\r\nu1,"a, ""quoted"" note",東京\r\nu2,"two\r\nlines",Zürich\r\nu3,"x\ny\nz",😀\r\n',
    )
    assert.deepEqual(rows.map(plain), [
      { line: 2, record: { user_id: 'u1', note: 'a, "quoted" note', city: '東京' }, error: undefined },
      { line: 3, record: { user_id: 'u2', note: 'two\r\nlines', city: 'Zürich' }, error: undefined },
      { line: 5, record: { user_id: 'u3', note: 'x\ny\nz', city: '😀' }, error: undefined },
    ])
  })

  test('--delimiter', async () => {
    const rows = await read('user_id;a\nu1;"x;y"\n', { blank: 'clear', delimiter: ';' })
    assert.deepEqual(rows.map(plain), [{ line: 2, record: { user_id: 'u1', a: 'x;y' }, error: undefined }])
  })

  test('blank cells: clear sends "", skip leaves the attribute out (user_id is never skipped)', async () => {
    const text = 'user_id,a,b\nu1,,1\n,2,\n'
    assert.deepEqual(
      (await read(text, { blank: 'clear' })).map((r) => ({ ...r.record })),
      [
        { user_id: 'u1', a: '', b: '1' },
        { user_id: '', a: '2', b: '' },
      ],
    )
    assert.deepEqual(
      (await read(text, { blank: 'skip' })).map((r) => ({ ...r.record })),
      [
        { user_id: 'u1', b: '1' },
        { user_id: '', a: '2' },
      ],
    )
  })

  test('a row with the wrong number of cells is reported with its line, and reading goes on', async () => {
    const rows = await read('user_id,a\n\nu1,1\nu2,1,extra\nu3\nu4,4\n')
    assert.deepEqual(rows.map(plain), [
      { line: 3, record: { user_id: 'u1', a: '1' }, error: undefined },
      { line: 4, record: undefined, error: 'has 3 cells but the header has 2' },
      { line: 5, record: undefined, error: 'has 1 cells but the header has 2' },
      { line: 6, record: { user_id: 'u4', a: '4' }, error: undefined },
    ])
    assert.deepEqual(rows[1]?.raw, ['u2', '1', 'extra'])
  })

  test('__proto__ and constructor are plain columns', async () => {
    const [row] = await read('user_id,__proto__,constructor\nu1,p,c\n')
    assert.equal(Object.getPrototypeOf(row?.record), null)
    assert.deepEqual(Object.entries(row!.record!), [
      ['user_id', 'u1'],
      ['__proto__', 'p'],
      ['constructor', 'c'],
    ])
  })

  test('header problems and broken quoting stop the read with a clear message', async () => {
    const cases: [string, RegExp][] = [
      ['', /the file is empty/],
      ['id,a\n1,2\n', /line 1: header: there is no "user_id" column/],
      ['user_id,a,a\n', /line 1: header: column 3 "a" appears more than once/],
      [`user_id,${'n'.repeat(51)}\n`, /line 1: header: attribute name "n+…" is longer than 50 characters/],
      ['user_id,a\nu1,"x"y\n', /not valid CSV: Invalid Closing Quote.* at line 2/],
      ['user_id,a\nu1,"never closed\n', /not valid CSV.*Quote Not Closed/],
    ]
    for (const [text, message] of cases) {
      await assert.rejects(read(text), (e: unknown) => {
        assert.ok(e instanceof InputFileError, String(e))
        assert.match(e.message, message)
        return true
      })
    }
  })
})
