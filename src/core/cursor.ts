/**
 * The opaque `next_cursor` of segment pages: a keyset cursor holding the last user id returned,
 * so the next page starts strictly after it and a walk never repeats or skips a user that matches
 * throughout, whatever uploads happen meanwhile.
 */
import { err, ok, type Issue, type Result } from './result.js'

const PREFIX = 'k1:'
const BASE64URL = /^[A-Za-z0-9_-]+$/
const MAX_CURSOR_LENGTH = 1024

/** base64url (no padding) of `k1:` + the UTF-8 user id. */
export function encodeCursor(lastUserId: string): string {
  const bytes = new TextEncoder().encode(PREFIX + lastUserId)
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** The last user id a cursor stands for, or an issue at `path` (default `cursor`) when it is not ours. */
export function decodeCursor(cursor: string, path = 'cursor'): Result<string, Issue[]> {
  const bad = err<Issue[]>([
    { code: 'invalid_value', path, message: 'is not a cursor this API returned; pass next_cursor as received' },
  ])
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !BASE64URL.test(cursor)) return bad
  let binary: string
  try {
    binary = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'))
  } catch {
    return bad
  }
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0))
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return bad
  }
  if (!text.startsWith(PREFIX) || text.length === PREFIX.length) return bad
  return ok(text.slice(PREFIX.length))
}
