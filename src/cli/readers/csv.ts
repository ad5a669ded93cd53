import { CsvError, Parser, type Options as CsvParseOptions } from 'csv-parse'
import { USER_ID_FIELD } from '../../core/limits.js'
import { splitRecord } from '../../sdk/index.js'
import { InputFileError } from './input-error.js'
import type { BlankPolicy, SourceRow } from './source-row.js'
import { utf8Chunks } from './utf8.js'

export { InputFileError, InvalidUtf8Error } from './input-error.js'

/**
 * The largest record read, in bytes. A valid row is far smaller: a value is at most 128 code points
 * (512 bytes of UTF-8, 258 if all quotes), so 8 MiB holds over 16,000 full columns, and it is the
 * server's default body limit. Its job is to stop a quote that is never closed early, with the line
 * where its record started, instead of reading the rest of the file into one field.
 */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024

export interface CsvReadOptions {
  /** One character. @default ',' */
  readonly delimiter?: string
  readonly blank: BlankPolicy
  /** Columns left out of every record, e.g. `_line` and `_reason` when re-uploading a rejects file. */
  readonly ignore?: ReadonlySet<string>
  /** Called once with the header row, before the first data row. */
  readonly onHeader?: (header: readonly string[]) => void
  /** @default MAX_RECORD_BYTES */
  readonly maxRecordBytes?: number
  /**
   * csv-parse's strict quoting (a closing quote followed by text is an error, the record is skipped
   * and reported). Off in the CLI, where a stray quote is an ordinary character; tests use it to
   * reach the skipped-record path.
   */
  readonly strictQuotes?: boolean
}

/**
 * Streams the rows of a CSV file: RFC 4180 quoting (`""` escapes, quoted line breaks), records ending
 * in CRLF, LF or CR, mixed in one file if need be, an optional UTF-8 BOM. The first row names the
 * fields and must include `user_id`. Empty lines are skipped. A quote inside an unquoted cell
 * (`12" pizza`) is kept as a character.
 *
 * A row that cannot be used (wrong number of cells, a record csv-parse skips) is yielded with an
 * `error`: one bad row must not stop a million good ones. What stops the file (no `user_id` column,
 * a quote never closed, a record over {@link MAX_RECORD_BYTES}, bytes that are not UTF-8) is thrown
 * as an {@link InputFileError}, after every row before it has been yielded.
 *
 * Pulling is lazy: one chunk of the file is parsed at a time, when its rows are wanted.
 */
export async function* readCsvRows(
  input: AsyncIterable<Buffer | string>,
  options: CsvReadOptions,
): AsyncGenerator<SourceRow> {
  const ready: SourceRow[] = []
  let header: string[] | undefined
  // Lines are counted here: csv-parse counts a quoted CRLF as two lines. `nextLine` is where the next
  // record starts. csv-parse's count is only used to tell that a record spans lines, and to find the
  // way back after a skipped record (whose own quoted CRLFs, if any, can then shift later lines).
  let nextLine = 1
  let parserLinesBefore = 0
  let quotedCrlfs = 0
  let afterSkip = false
  let skippedAt = 0
  let bytes = 0

  const onRecord = (cells: string[], context: { readonly lines: number; readonly bytes: number }): void => {
    const span = context.lines - parserLinesBefore
    parserLinesBefore = context.lines
    bytes = context.bytes
    let line = nextLine
    if (span !== 1 || afterSkip) {
      const inside = lineBreaksIn(cells)
      quotedCrlfs += inside.crlfs
      if (afterSkip) {
        const lastLine = context.lines - quotedCrlfs
        line = lastLine - inside.breaks
        afterSkip = false
      }
      nextLine = line + 1 + inside.breaks
    } else {
      nextLine = line + 1
    }
    if (header === undefined) {
      header = cells
      checkHeader(header.filter((name) => options.ignore?.has(name) !== true))
      options.onHeader?.(header)
      return
    }
    if (cells.length === 1 && cells[0] === '') return
    if (cells.length !== header.length) {
      ready.push({
        line,
        record: undefined,
        error: `has ${cells.length} cells but the header has ${header.length}`,
        raw: cells,
        bytes,
      })
      return
    }
    const record = Object.create(null) as Record<string, unknown>
    for (let i = 0; i < header.length; i++) {
      const name = header[i] as string
      const value = cells[i] as string
      if (options.ignore?.has(name) === true) continue
      if (value === '' && options.blank === 'skip' && name !== USER_ID_FIELD) continue
      record[name] = value
    }
    ready.push({ line, record, raw: cells, bytes })
    return
  }

  const onSkip = (error: CsvError | undefined): undefined => {
    if (error === undefined) return
    // These cannot be skipped: csv-parse would go on reading the rest of the file into one field.
    if (error.code === 'CSV_MAX_RECORD_SIZE' || error.code === 'CSV_QUOTE_NOT_CLOSED') throw error
    afterSkip = true
    if (skippedAt === nextLine) return
    skippedAt = nextLine
    ready.push({ line: nextLine, record: undefined, error: `not valid CSV: ${csvReason(error)}`, raw: [], bytes })
  }

  const maxRecordBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES
  const parser = new RecordTaker(
    {
      bom: true,
      delimiter: options.delimiter ?? ',',
      record_delimiter: ['\r\n', '\n', '\r'],
      relax_column_count: true,
      relax_quotes: options.strictQuotes !== true,
      max_record_size: maxRecordBytes,
      skip_records_with_error: true,
      on_skip: onSkip,
    },
    onRecord,
  )
  parser.on('error', () => undefined) // reported through the write and end callbacks below
  const write = (chunk: Buffer): Promise<void> =>
    new Promise((resolve, reject) => parser.write(chunk, (error) => (error ? reject(error) : resolve())))
  const end = (): Promise<void> =>
    new Promise((resolve, reject) => {
      parser.once('error', reject)
      parser.once('finish', resolve)
      parser.end()
    })
  function* take(): Generator<SourceRow> {
    for (let i = 0; i < ready.length; i++) yield ready[i] as SourceRow
    ready.length = 0
  }

  try {
    for await (const chunk of utf8Chunks(input)) {
      await write(chunk)
      yield* take()
    }
    await end()
    yield* take()
  } catch (error) {
    yield* take()
    throw toInputFileError(error, nextLine, maxRecordBytes)
  } finally {
    parser.destroy()
    ;(input as { destroy?: () => void }).destroy?.()
  }
  if (header === undefined) throw new InputFileError('the file is empty: expected a header row with "user_id"', 1)
}

/**
 * csv-parse's stream parser, with each record handed to `onRecord` the moment it is parsed, with
 * csv-parse's counters at that moment, instead of being queued in the stream: rows parsed before an
 * error are never lost with the stream's buffer, and no per-record info object is built (csv-parse's
 * `on_record` builds two, about 10 % of the parse time).
 */
type TakeRecord = (cells: string[], info: { readonly lines: number; readonly bytes: number }) => void

class RecordTaker extends Parser {
  readonly #onRecord: TakeRecord

  constructor(options: CsvParseOptions, onRecord: TakeRecord) {
    super(options)
    this.#onRecord = onRecord
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) return super.push(null, encoding)
    this.#onRecord(chunk as string[], this.info)
    return true
  }
}

function toInputFileError(error: unknown, line: number, maxRecordBytes: number): unknown {
  if (error instanceof InputFileError || !(error instanceof CsvError)) return error
  if (error.code === 'CSV_MAX_RECORD_SIZE') {
    return new InputFileError(
      `the record starting here is over ${formatBytes(maxRecordBytes)} (the limit): unclosed quote starting at line ${line}?`,
      line,
    )
  }
  if (error.code === 'CSV_QUOTE_NOT_CLOSED') {
    return new InputFileError('a quote in the record starting here is never closed (the file ends inside it)', line)
  }
  return new InputFileError(`not valid CSV: ${csvReason(error)}`, line)
}

/** csv-parse's message without its own line number, which counts a quoted CRLF twice. */
function csvReason(error: CsvError): string {
  return error.message.replace(/ (at|on) line \d+/, '')
}

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`
}

/** Line breaks inside the cells (CRLF, LF or lone CR, each one break), and how many were CRLFs. */
function lineBreaksIn(cells: readonly string[]): { breaks: number; crlfs: number } {
  let breaks = 0
  let crlfs = 0
  for (const cell of cells) {
    for (let i = cell.indexOf('\n'); i !== -1; i = cell.indexOf('\n', i + 1)) {
      breaks++
      if (i > 0 && cell.charCodeAt(i - 1) === 13) crlfs++
    }
    for (let i = cell.indexOf('\r'); i !== -1; i = cell.indexOf('\r', i + 1)) {
      if (cell.charCodeAt(i + 1) !== 10) breaks++
    }
  }
  return { breaks, crlfs }
}

/** The header is checked once, with the same rules the server applies to `field_name`. */
function checkHeader(header: readonly string[]): void {
  const seen = new Set<string>()
  for (let i = 0; i < header.length; i++) {
    const name = header[i] as string
    if (seen.has(name)) throw new InputFileError(`header: column ${i + 1} "${name}" appears more than once`, 1)
    seen.add(name)
  }
  if (!seen.has(USER_ID_FIELD)) {
    throw new InputFileError(`header: there is no "${USER_ID_FIELD}" column (columns: ${header.join(', ')})`, 1)
  }
  const probe = Object.create(null) as Record<string, string>
  for (const name of header) probe[name] = 'x'
  const checked = splitRecord(probe)
  if (!checked.ok) throw new InputFileError(`header: ${checked.reason}`, 1)
}
