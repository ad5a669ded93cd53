import { findDuplicateKey } from '../../core/json-text.js'
import { InputFileError } from './input-error.js'
import type { BlankPolicy, SourceRow } from './source-row.js'
import { utf8Chunks } from './utf8.js'

/** The longest line read, in bytes: like a CSV record (see `MAX_RECORD_BYTES`), far above any valid row. */
export const MAX_LINE_BYTES = 8 * 1024 * 1024

export interface JsonlReadOptions {
  readonly blank: BlankPolicy
  /** Keys left out of every record. */
  readonly ignore?: ReadonlySet<string>
  /** @default MAX_LINE_BYTES */
  readonly maxLineBytes?: number
}

/**
 * Streams JSON Lines: one JSON object per line (`{"user_id": "…", "plan": "pro"}`), LF or CRLF,
 * blank lines skipped. A line that is not a JSON object, or repeats a key (the server refuses
 * those; `JSON.parse` would silently keep the last), is yielded with an `error`. `""` values follow
 * the blank policy like empty CSV cells do; other values go to the validator as they are.
 *
 * What stops the file is thrown as an {@link InputFileError} after the rows before it: a first line
 * that is not a JSON object (a CSV file sent as JSONL, say), a line over {@link MAX_LINE_BYTES},
 * bytes that are not UTF-8.
 */
export async function* readJsonlRows(
  input: AsyncIterable<Buffer | string>,
  options: JsonlReadOptions,
): AsyncGenerator<SourceRow> {
  const maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES
  const state = { sawObject: false }
  // A line cut by the chunk edge: its pieces are joined once its end arrives.
  let pending: Buffer[] = []
  let pendingBytes = 0
  let offset = 0
  let line = 0
  try {
    for await (const chunk of utf8Chunks(input)) {
      let from = 0
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, from)) {
        line++
        let bytes = chunk.subarray(from, nl)
        if (pendingBytes > 0) {
          bytes = Buffer.concat([...pending, bytes])
          pending = []
          pendingBytes = 0
        }
        from = nl + 1
        if (bytes.length > maxLineBytes) throw tooLong(line, maxLineBytes)
        const row = toRow(bytes, line, offset + from, options, state)
        if (row !== undefined) yield row
      }
      if (from < chunk.length) {
        pending.push(chunk.subarray(from))
        pendingBytes += chunk.length - from
        if (pendingBytes > maxLineBytes) throw tooLong(line + 1, maxLineBytes)
      }
      offset += chunk.length
    }
    if (pendingBytes > 0) {
      line++
      const row = toRow(Buffer.concat(pending), line, offset, options, state)
      if (row !== undefined) yield row
    }
  } finally {
    ;(input as { destroy?: () => void }).destroy?.()
  }
}

function tooLong(line: number, max: number): InputFileError {
  const size = max % (1024 * 1024) === 0 ? `${max / (1024 * 1024)} MiB` : `${max} bytes`
  return new InputFileError(`the line is over ${size} (the limit)`, line)
}

function toRow(
  bytes: Buffer,
  line: number,
  end: number,
  options: JsonlReadOptions,
  state: { sawObject: boolean },
): SourceRow | undefined {
  let text = bytes.toString('utf8')
  if (text.endsWith('\r')) text = text.slice(0, -1)
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (text.trim() === '') return undefined
  const first = !state.sawObject
  state.sawObject = true
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    if (first) throw notJsonLines(line)
    return { line, record: undefined, error: `not valid JSON: ${(error as Error).message}`, raw: text, bytes: end }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (first) throw notJsonLines(line)
    return { line, record: undefined, error: 'must be a JSON object with a "user_id"', raw: text, bytes: end }
  }
  const keys = Object.keys(value)
  const repeated = repeatedKey(text, keys.length)
  if (repeated !== undefined) {
    return { line, record: undefined, error: `key "${repeated}" appears more than once`, raw: text, bytes: end }
  }
  const source = value as Record<string, unknown>
  const record = Object.create(null) as Record<string, unknown>
  for (const k of keys) {
    if (options.ignore?.has(k) === true) continue
    const v = source[k]
    if (v === '' && options.blank === 'skip' && k !== 'user_id') continue
    record[k] = v
  }
  return { line, record, raw: text, bytes: end }
}

function notJsonLines(line: number): InputFileError {
  return new InputFileError(
    'not JSON Lines: the first line is not a JSON object; is this a CSV file? Then pass --format csv',
    line,
  )
}

/**
 * The key written twice in the object `text` (valid JSON) whose parse has `keyCount` keys, if any.
 * `JSON.parse` keeps one of each, so the text has more members than the object exactly when a key
 * repeats. Counting colons settles the usual row with one native scan; a colon inside a value
 * (a timestamp) takes a scan that skips strings; only a repeat, or nesting, pays for the full
 * key-by-key scan that names the key.
 */
export function repeatedKey(text: string, keyCount: number): string | undefined {
  let colons = 0
  for (let i = text.indexOf(':'); i !== -1; i = text.indexOf(':', i + 1)) colons++
  if (colons === keyCount) return undefined
  if (topLevelMemberCount(text) === keyCount) return undefined
  return findDuplicateKey(text)
}

/** Members of the object `text` (valid JSON), or undefined when a value nests (then the caller scans fully). */
function topLevelMemberCount(text: string): number | undefined {
  let members = 0
  let from = text.indexOf('{') + 1
  for (;;) {
    const open = text.indexOf('"', from)
    const end = open === -1 ? text.length : open
    for (let k = from; k < end; k++) {
      const c = text.charCodeAt(k)
      if (c === 0x3a /* : */) members++
      else if (c === 0x7b /* { */ || c === 0x5b /* [ */) return undefined
    }
    if (open === -1) return members
    let close = text.indexOf('"', open + 1)
    while (close !== -1 && escaped(text, close)) close = text.indexOf('"', close + 1)
    if (close === -1) return undefined
    from = close + 1
  }
}

/** Whether the quote at `at` is escaped: an odd number of backslashes before it. */
function escaped(text: string, at: number): boolean {
  let n = 0
  while (text.charCodeAt(at - 1 - n) === 0x5c) n++
  return n % 2 === 1
}
