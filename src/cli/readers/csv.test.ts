import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { InputFileError, InvalidUtf8Error, readCsvRows, type CsvReadOptions } from './csv.js'
import type { SourceRow } from './source-row.js'

async function read(text: string, options: CsvReadOptions = { blank: 'clear' }, chunk = 7): Promise<SourceRow[]> {
  const rows: SourceRow[] = []
  // Small chunks by default, so rows, quoted fields and characters straddle chunk boundaries.
  for await (const row of readCsvRows(chunked(Buffer.from(text), chunk), options)) rows.push(row)
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

  test('header problems stop the read with a clear one-line message', async () => {
    const cases: [string, RegExp][] = [
      ['', /the file is empty/],
      ['id,a\n1,2\n', /^line 1: header: there is no "user_id" column/],
      ['user_id,a,a\n', /^line 1: header: column 3 "a" appears more than once/],
      [`user_id,${'n'.repeat(51)}\n`, /^line 1: header: attribute name "n+…" is longer than 50 characters/],
      ['user_id,"a\r\nb","a\r\nb"\n', /^line 1: header: column 3 "a\\r\\nb" appears more than once$/],
    ]
    for (const [text, message] of cases) {
      await assert.rejects(read(text), (e: unknown) => {
        assert.ok(e instanceof InputFileError, String(e))
        assert.match(e.message, message)
        assert.ok(!/[\r\n]/.test(e.message) && !/[\r\n]/.test(e.describe('f.csv')), 'no raw line breaks')
        return true
      })
    }
  })

  test('a quote inside an unquoted cell is a character, not a syntax error', async () => {
    const rows = await read('user_id,plan\nq1,p\nbad,x"y\nq2,12" pizza\nq3,"a""b"\n')
    assert.deepEqual(rows.map(plain), [
      { line: 2, record: { user_id: 'q1', plan: 'p' }, error: undefined },
      { line: 3, record: { user_id: 'bad', plan: 'x"y' }, error: undefined },
      { line: 4, record: { user_id: 'q2', plan: '12" pizza' }, error: undefined },
      { line: 5, record: { user_id: 'q3', plan: 'a"b' }, error: undefined },
    ])
  })

  test('CRLF, LF and CR mixed in one file: every row found, no \\r left in a value, right line numbers', async () => {
    for (const chunk of [1, 2, 3, 7, 1 << 16]) {
      const m = await read('user_id,plan\r\nmx1,a\r\nmx2,b\nmx3,c\rmx4,d\r\n\r\nmx5,e', { blank: 'clear' }, chunk)
      assert.deepEqual(
        m.map(plain),
        [
          { line: 2, record: { user_id: 'mx1', plan: 'a' }, error: undefined },
          { line: 3, record: { user_id: 'mx2', plan: 'b' }, error: undefined },
          { line: 4, record: { user_id: 'mx3', plan: 'c' }, error: undefined },
          { line: 5, record: { user_id: 'mx4', plan: 'd' }, error: undefined },
          { line: 7, record: { user_id: 'mx5', plan: 'e' }, error: undefined },
        ],
        `chunks of ${chunk}`,
      )
      const m2 = await read('user_id,plan\nmy1,a\nmy2,b\r\nmy3,c\n', { blank: 'clear' }, chunk)
      assert.deepEqual(
        m2.map((r) => r.record?.plan),
        ['a', 'b', 'c'],
      )
    }
  })

  test('line numbers stay right after quoted CRLF, LF and CR line breaks in any file', async () => {
    const text = 'user_id,note\r\nu1,"a\nb"\r\nu2,"c\r\nd\r\ne"\r\nu3,x\r\nu4,"f\rg"\nu5,"h\r\n"\r\nu6,y,z\r\nu7,w\r\n'
    for (const chunk of [1, 4, 7, 1 << 16]) {
      const rows = await read(text, { blank: 'clear' }, chunk)
      assert.deepEqual(
        rows.map((r) => [r.line, r.record?.user_id ?? r.raw[0]]),
        [
          [2, 'u1'],
          [4, 'u2'],
          [7, 'u3'],
          [8, 'u4'],
          [10, 'u5'],
          [12, 'u6'],
          [13, 'u7'],
        ],
        `chunks of ${chunk}`,
      )
      assert.equal(rows[5]?.error, 'has 3 cells but the header has 2')
    }
  })

  test('each row carries the byte offset where it ends, for progress', async () => {
    const text = '\ufeffuser_id,a\nu1,é\r\nu2,"x\ny"\nu3,z'
    const rows = await read(text)
    const size = Buffer.byteLength(text)
    assert.deepEqual(
      rows.map((r) => r.bytes),
      [Buffer.byteLength('\ufeffuser_id,a\nu1,é\r\n'), Buffer.byteLength('\ufeffuser_id,a\nu1,é\r\nu2,"x\ny"\n'), size],
    )
  })

  test('a quote never closed stops the read at the line where its record starts, after the rows before it', async () => {
    const rows: SourceRow[] = []
    await assert.rejects(
      async () => {
        for await (const row of readCsvRows(Readable.from([Buffer.from('user_id,a\nu1,1\nu2,"x\ny\nu3,3\n')]), {
          blank: 'clear',
        }))
          rows.push(row)
      },
      (e: unknown) => {
        assert.ok(e instanceof InputFileError)
        assert.equal(e.line, 3)
        assert.equal(
          e.describe('f.csv'),
          'f.csv line 3: a quote in the record starting here is never closed (the file ends inside it)',
        )
        return true
      },
    )
    assert.deepEqual(rows.map(plain), [{ line: 2, record: { user_id: 'u1', a: '1' }, error: undefined }])
  })

  test('a record over the size limit stops the read early, naming the line where it started', async () => {
    let pulled = 0
    async function* file(): AsyncGenerator<Buffer> {
      yield Buffer.from('user_id,a\r\nu1,1\r\nu2,"opened\r\n')
      for (let i = 0; i < 1000; i++) {
        pulled++
        yield Buffer.from('u,filler\r\n'.repeat(100))
      }
    }
    const rows: SourceRow[] = []
    await assert.rejects(
      async () => {
        for await (const row of readCsvRows(file(), { blank: 'clear', maxRecordBytes: 4096 })) rows.push(row)
      },
      (e: unknown) => {
        assert.ok(e instanceof InputFileError)
        assert.equal(
          e.message,
          'line 3: the record starting here is over 4096 bytes (the limit): unclosed quote starting at line 3?',
        )
        return true
      },
    )
    assert.equal(rows.length, 1)
    assert.ok(pulled < 10, `stopped after ${pulled} chunks, not at the end of the file`)
  })

  test('a record csv-parse skips goes out as a bad row with its line, and reading goes on', async () => {
    const rows = await read('user_id,a\nu1,1\nu2,"x"y"\nu3,3\nu4,"a\r\nb"\r\nu5,5\n', {
      blank: 'clear',
      strictQuotes: true,
    })
    assert.deepEqual(
      rows.map((r) => [r.line, r.record?.user_id, r.error]),
      [
        [2, 'u1', undefined],
        [
          3,
          undefined,
          'not valid CSV: Invalid Closing Quote: got "y" instead of delimiter, record delimiter, trimable character (if activated) or comment',
        ],
        [4, 'u3', undefined],
        [5, 'u4', undefined],
        [7, 'u5', undefined],
      ],
    )
  })

  test('bytes that are not UTF-8 stop the read with their line and offset, after the rows before them', async () => {
    const text = Buffer.concat([
      Buffer.from('user_id,city\nl1,ok\nl2,caf'),
      Buffer.from([0xe9]),
      Buffer.from('\nl3,x\n'),
    ])
    for (const chunk of [1, 5, 1 << 16]) {
      const rows: SourceRow[] = []
      await assert.rejects(
        async () => {
          for await (const row of readCsvRows(chunked(text, chunk), { blank: 'clear' })) rows.push(row)
        },
        (e: unknown) => {
          assert.ok(e instanceof InvalidUtf8Error, String(e))
          assert.equal(e.offset, 25)
          assert.equal(
            e.describe('l.csv'),
            'l.csv is not valid UTF-8 near line 3 (byte offset 25): convert it to UTF-8, e.g. iconv -f latin1 -t utf-8',
          )
          return true
        },
      )
      assert.deepEqual(
        rows.map((r) => r.record?.user_id),
        ['l1'],
        `chunks of ${chunk}`,
      )
    }
  })
})

function chunked(bytes: Buffer, size: number): Readable {
  const pieces: Buffer[] = []
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size))
  return Readable.from(pieces)
}
