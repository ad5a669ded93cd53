import { isUtf8 } from 'node:buffer'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { TraitbaseError } from '../core/errors.js'
import { findDuplicateKey } from '../core/json-text.js'

/** Keys whose repetition the duplicate-key fast path looks for first: the upload body's two fields. */
const HOT_KEYS = ['field_name', 'values'] as const

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i

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

function parseJsonBody(request: FastifyRequest, bytes: Buffer): unknown {
  const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new TraitbaseError('UNSUPPORTED_MEDIA_TYPE', `Unsupported charset "${charset}": send the JSON body as UTF-8`)
  }
  if (bytes.length === 0) throw new TraitbaseError('INVALID_JSON', 'Request body is empty: expected a JSON object')
  if (!isUtf8(bytes)) throw new TraitbaseError('INVALID_JSON', 'Request body is not valid UTF-8')
  let text = bytes.toString('utf8')
  // RFC 8259 §8.1: a parser may ignore a byte order mark; JSON.parse does not.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
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
