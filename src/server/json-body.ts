import { isUtf8 } from 'node:buffer'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { TraitbaseError } from '../core/errors.js'
import { findDuplicateKey } from '../core/json-text.js'

/** Keys whose repetition the duplicate-key fast path looks for first: the upload body's two fields. */
const HOT_KEYS = ['field_name', 'values'] as const

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i

/**
 * No endpoint takes JSON nested this deep (an upload is 3 levels, a 10-level segment condition about 24).
 * Deeper bodies are refused before `JSON.parse`, which needs seconds for megabytes of `[[[[`.
 */
export const MAX_JSON_DEPTH = 256

/**
 * No endpoint takes more JSON values than this (an upload has at most ~5,200, a segment condition
 * 100 leaves of up to 1,000 values). A bigger body is refused before `JSON.parse`, which would spend
 * a second or more of the event loop building millions of arrays or keys for a body under the size limit.
 */
export const MAX_JSON_VALUES = 200_000

/**
 * Makes `application/json` (any charset parameter naming UTF-8) the only body type the app accepts;
 * every other type is a 415. Bodies are read as bytes and checked before `JSON.parse`, which would
 * otherwise replace invalid UTF-8 with U+FFFD and keep the last of duplicate keys, both silently.
 */
export function registerJsonBodyParser(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (request, body, done) => {
    try {
      done(null, parseJsonBody(request, body as Buffer))
    } catch (error) {
      done(error as Error, undefined)
    }
  })
}

/** Bodies must arrive as they are: a compressed one would be read as broken UTF-8 or, worse, as plain text. */
function refuseCodings(request: FastifyRequest): void {
  const content = request.headers['content-encoding']?.trim().toLowerCase()
  if (content !== undefined && content !== '' && content !== 'identity') {
    throw new TraitbaseError(
      'UNSUPPORTED_MEDIA_TYPE',
      `Content-Encoding "${content.slice(0, 40)}" is not supported: send the body uncompressed`,
    )
  }
  const transfer = request.headers['transfer-encoding']?.toLowerCase()
  if (transfer !== undefined && transfer.split(',').some((t) => t.trim() !== 'chunked')) {
    throw new TraitbaseError('UNSUPPORTED_MEDIA_TYPE', 'Transfer-Encoding other than "chunked" is not supported')
  }
}

function parseJsonBody(request: FastifyRequest, bytes: Buffer): unknown {
  refuseCodings(request)
  const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new TraitbaseError('UNSUPPORTED_MEDIA_TYPE', `Unsupported charset "${charset}": send the JSON body as UTF-8`)
  }
  if (bytes.length === 0) throw new TraitbaseError('INVALID_JSON', 'Request body is empty: expected a JSON object')
  if (!isUtf8(bytes)) throw new TraitbaseError('INVALID_JSON', 'Request body is not valid UTF-8')
  let text = bytes.toString('utf8')
  // RFC 8259 §8.1: a parser may ignore a byte order mark; JSON.parse does not.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const problem = structureProblem(text, MAX_JSON_DEPTH, MAX_JSON_VALUES)
  if (problem === 'depth') {
    throw new TraitbaseError('INVALID_JSON', `Request body nests deeper than ${MAX_JSON_DEPTH} levels`)
  }
  if (problem === 'values') {
    throw new TraitbaseError(
      'INVALID_JSON',
      `Request body holds more than ${MAX_JSON_VALUES} JSON values; no request of this API needs that many`,
    )
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    // V8's message names the offending token and position, which is what a client needs to fix it.
    const detail = error instanceof Error ? error.message : 'parse error'
    throw new TraitbaseError('INVALID_JSON', `Request body is not valid JSON: ${detail}`)
  }
  const duplicate = findDuplicateKey(text, HOT_KEYS)
  if (duplicate !== undefined) {
    throw new TraitbaseError('INVALID_JSON', `Duplicate key "${duplicate.slice(0, 60)}" in a JSON object`)
  }
  return value
}

/** Counts occurrences of `ch`, stopping once past `cap`; native `indexOf` keeps the usual case in microseconds. */
function countUpTo(text: string, ch: string, cap: number): number {
  let n = 0
  for (let i = text.indexOf(ch); i !== -1 && n <= cap; i = text.indexOf(ch, i + 1)) n++
  return n
}

/**
 * What makes a body too complex to hand to `JSON.parse`, looking only at brackets and commas outside
 * strings: `depth` when brackets nest deeper than `maxDepth`, `values` when the text holds more than
 * `maxValues` JSON values (each value but the first of a container follows a comma, and each
 * container opens with a bracket). One pass, and none at all for the usual upload. Never throws;
 * assumes nothing about validity.
 */
export function structureProblem(text: string, maxDepth: number, maxValues: number): 'depth' | 'values' | undefined {
  // Counting inside strings too can only overcount: under both limits that way, it is under for sure.
  const brackets = countUpTo(text, '[', maxValues) + countUpTo(text, '{', maxValues)
  if (brackets <= maxDepth && brackets + countUpTo(text, ',', maxValues) <= maxValues) return undefined
  let depth = 0
  let values = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      const end = closingQuote(text, i)
      if (end === -1) return undefined
      i = end
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return 'depth'
      if (++values > maxValues) return 'values'
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--
    } else if (c === 0x2c /* , */) {
      if (++values > maxValues) return 'values'
    }
  }
  return undefined
}

/** True when brackets outside strings nest deeper than `max`. */
export function nestsDeeperThan(text: string, max: number): boolean {
  return structureProblem(text, max, Number.MAX_SAFE_INTEGER) === 'depth'
}

/** True when the text holds more than `max` JSON values (see {@link structureProblem}). */
export function holdsMoreValuesThan(text: string, max: number): boolean {
  return structureProblem(text, Number.MAX_SAFE_INTEGER, max) === 'values'
}

/** Index of the quote closing the string that opens at `open`: one not preceded by an odd run of backslashes; -1 if none. */
function closingQuote(text: string, open: number): number {
  let j = text.indexOf('"', open + 1)
  while (j !== -1) {
    let k = j - 1
    while (text.charCodeAt(k) === 0x5c /* \ */) k--
    if ((j - 1 - k) % 2 === 0) return j
    j = text.indexOf('"', j + 1)
  }
  return -1
}
