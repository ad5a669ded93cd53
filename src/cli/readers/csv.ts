import type { Readable } from 'node:stream'
import { parse } from 'csv-parse'
import { USER_ID_FIELD } from '../../core/limits.js'
import { splitRecord } from '../../sdk/index.js'
import type { BlankPolicy, SourceRow } from './source-row.js'

export interface CsvReadOptions {
  /** One character. @default ',' */
  readonly delimiter?: string
  readonly blank: BlankPolicy
  /** Columns left out of every record, e.g. `_line` and `_reason` when re-uploading a rejects file. */
  readonly ignore?: ReadonlySet<string>
  /** Called once with the header row, before the first data row. */
  readonly onHeader?: (header: readonly string[]) => void
}

/** A problem that makes the whole file unreadable (bad header, broken quoting); carries its line. */
export class InputFileError extends Error {
  readonly line: number | undefined
  constructor(message: string, line?: number) {
    super(line === undefined ? message : `line ${line}: ${message}`)
    this.name = 'InputFileError'
    this.line = line
  }
}

/**
 * Streams the rows of a CSV file (RFC 4180: quoted fields, `""` escapes, embedded newlines, CRLF or
 * LF, optional UTF-8 BOM). The first row names the fields and must include `user_id`. Empty lines
 * are skipped. A row with the wrong number of cells is yielded with an `error`, not thrown: one bad
 * row must not stop a million good ones. Pulling is lazy, so the file is read only as fast as rows
 * are consumed.
 */
export async function* readCsvRows(input: Readable, options: CsvReadOptions): AsyncGenerator<SourceRow> {
  const parser = parse({
    bom: true,
    delimiter: options.delimiter ?? ',',
    relax_column_count: true,
  })
  // Bytes the file stream has read: close enough for progress, and cheaper than csv-parse's per-record info.
  const bytesRead = (): number => (input as Readable & { bytesRead?: number }).bytesRead ?? 0
  input.on('error', (error) => parser.destroy(error))
  input.pipe(parser)

  let header: string[] | undefined
  let line = 1
  try {
    for await (const cells of parser as AsyncIterable<string[]>) {
      const start = line
      // csv-parse's own line count is off for quoted CRLF, so count the newlines the row spans.
      line += 1
      for (const cell of cells) line += countNewlines(cell)
      if (header === undefined) {
        header = cells
        checkHeader(header.filter((name) => options.ignore?.has(name) !== true))
        options.onHeader?.(header)
        continue
      }
      if (cells.length === 1 && cells[0] === '') continue
      if (cells.length !== header.length) {
        yield {
          line: start,
          record: undefined,
          error: `has ${cells.length} cells but the header has ${header.length}`,
          raw: cells,
          bytes: bytesRead(),
        }
        continue
      }
      const record = Object.create(null) as Record<string, unknown>
      for (let i = 0; i < header.length; i++) {
        const name = header[i] as string
        const value = cells[i] as string
        if (options.ignore?.has(name) === true) continue
        if (value === '' && options.blank === 'skip' && name !== USER_ID_FIELD) continue
        record[name] = value
      }
      yield { line: start, record, raw: cells, bytes: bytesRead() }
    }
  } catch (error) {
    if (error instanceof InputFileError) throw error
    const e = error as { code?: unknown; message?: string; lines?: unknown }
    if (typeof e.code === 'string' && e.code.startsWith('CSV_')) {
      throw new InputFileError(`not valid CSV: ${e.message ?? e.code}`)
    }
    throw error
  } finally {
    input.unpipe(parser)
    input.destroy()
  }
  if (header === undefined) throw new InputFileError('the file is empty: expected a header row with "user_id"', 1)
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

function countNewlines(s: string): number {
  let n = 0
  let i = s.indexOf('\n')
  while (i !== -1) {
    n++
    i = s.indexOf('\n', i + 1)
  }
  return n
}
