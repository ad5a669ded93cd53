/**
 * The opaque `next_cursor` of segment pages: a keyset cursor holding the last user id returned,
 * so the next page starts strictly after it and a walk never repeats or skips a user that matches
 * throughout, whatever uploads happen meanwhile. It also carries a short fingerprint of the
 * project and condition it was made for, so a cursor handed to another query or project is refused
 * instead of silently skipping users.
 */
import { err, ok, type Issue, type Result } from './result.js'

const PREFIX = 'k2:'
/** Cursors made before fingerprints: still accepted, unchecked. */
const LEGACY_PREFIX = 'k1:'
const BASE64URL = /^[A-Za-z0-9_-]+$/
const MAX_CURSOR_LENGTH = 1024

/**
 * What a cursor is for: the project and the condition (as parsed, so two spellings of one condition
 * agree). A 32-bit FNV-1a hash in hex: a guard against mix-ups, not a security boundary (a cursor
 * grants nothing; the key decides what a query may see).
 */
export function cursorScope(projectId: number, where: unknown): string {
  const text = `${projectId}\n${JSON.stringify(where)}`
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, '0')
}

/** base64url (no padding) of `k2:` + scope + `:` + the UTF-8 user id. */
export function encodeCursor(lastUserId: string, scope: string): string {
  const bytes = new TextEncoder().encode(`${PREFIX}${scope}:${lastUserId}`)
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * The last user id a cursor stands for, or an issue at `path` (default `cursor`) when it is not
 * ours or was made for another query or project (`scope` from {@link cursorScope}).
 */
export function decodeCursor(cursor: string, scope: string, path = 'cursor'): Result<string, Issue[]> {
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
  if (text.startsWith(LEGACY_PREFIX)) {
    return text.length === LEGACY_PREFIX.length ? bad : ok(text.slice(LEGACY_PREFIX.length))
  }
  if (!text.startsWith(PREFIX)) return bad
  const sep = text.indexOf(':', PREFIX.length)
  if (sep === -1 || sep === text.length - 1) return bad
  if (text.slice(PREFIX.length, sep) !== scope) {
    return err([
      {
        code: 'invalid_value',
        path,
        message:
          'belongs to another query or project; follow next_cursor with the same where, or start without a cursor',
      },
    ])
  }
  return ok(text.slice(sep + 1))
}
