import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import type { BlankPolicy, SourceRow } from './source-row.js'

export interface JsonlReadOptions {
  readonly blank: BlankPolicy
  /** Keys left out of every record. */
  readonly ignore?: ReadonlySet<string>
}

/**
 * Streams JSON Lines: one JSON object per line (`{"user_id": "…", "plan": "pro"}`), LF or CRLF,
 * blank lines skipped. A line that is not a JSON object is yielded with an `error`. `""` values
 * follow the blank policy like empty CSV cells do; other values go to the validator as they are.
 */
export async function* readJsonlRows(input: Readable, options: JsonlReadOptions): AsyncGenerator<SourceRow> {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let line = 0
  let bytes = 0
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      bytes += chunk.length
      pending += decoder.write(chunk)
      let from = 0
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n', from)) {
        const text = pending.slice(from, nl)
        from = nl + 1
        line++
        const row = toRow(text, line, bytes, options)
        if (row !== undefined) yield row
      }
      pending = pending.slice(from)
    }
    pending += decoder.end()
    if (pending !== '') {
      line++
      const row = toRow(pending, line, bytes, options)
      if (row !== undefined) yield row
    }
  } finally {
    input.destroy()
  }
}

function toRow(rawLine: string, line: number, bytes: number, options: JsonlReadOptions): SourceRow | undefined {
  let text = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return { line, record: undefined, error: `not valid JSON: ${(error as Error).message}`, raw: text, bytes }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { line, record: undefined, error: 'must be a JSON object with a "user_id"', raw: text, bytes }
  }
  const record = Object.create(null) as Record<string, unknown>
  for (const [k, v] of Object.entries(value)) {
    if (options.ignore?.has(k) === true) continue
    if (v === '' && options.blank === 'skip' && k !== 'user_id') continue
    record[k] = v
  }
  return { line, record, raw: text, bytes }
}
