/**
 * The opaque `next_cursor` of segment pages: a keyset cursor holding the last user id returned,
 * so the next page starts strictly after it and a walk never repeats or skips a user that matches
 * throughout, whatever uploads happen meanwhile. It also carries a short fingerprint of the
 * project and condition it was made for, so a cursor handed to another query or project is refused
 * instead of silently skipping users.
 */
import { err, ok, type Issue, type Result } from './result.js'

const PREFIX = 'k2:'
/** k2 plus the moment the walk began (epoch ms), so relative date conditions mean the same on every page. */
const TIMED_PREFIX = 'k3:'
/** Cursors made before fingerprints: still accepted, unchecked. */
const LEGACY_PREFIX = 'k1:'
const MAX_CURSOR_NOW = 253_402_300_799_999
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

/**
 * base64url (no padding) of `k2:` + scope + `:` + the UTF-8 user id; with `now`, of `k3:` + scope +
 * `:` + now (epoch ms) + `:` + the user id.
 */
export function encodeCursor(lastUserId: string, scope: string, now?: number): string {
  const text = now === undefined ? `${PREFIX}${scope}:${lastUserId}` : `${TIMED_PREFIX}${scope}:${now}:${lastUserId}`
  const bytes = new TextEncoder().encode(text)
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * The last user id a cursor stands for, or an issue at `path` (default `cursor`) when it is not
 * ours or was made for another query or project (`scope` from {@link cursorScope}).
 */
export function decodeCursor(cursor: string, scope: string, path = 'cursor'): Result<string, Issue[]> {
  const r = decodeCursorState(cursor, scope, path)
  return r.ok ? ok(r.value.afterUserId) : r
}

/** What a cursor holds: the last user id returned and, for cursors made with one, the walk's "now". */
export interface CursorState {
  readonly afterUserId: string
  readonly now?: number
}

/** Like {@link decodeCursor}, with the moment the walk began when the cursor carries one. */
export function decodeCursorState(cursor: string, scope: string, path = 'cursor'): Result<CursorState, Issue[]> {
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
    return text.length === LEGACY_PREFIX.length ? bad : ok({ afterUserId: text.slice(LEGACY_PREFIX.length) })
  }
  const timed = text.startsWith(TIMED_PREFIX)
  if (!timed && !text.startsWith(PREFIX)) return bad
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
  if (!timed) return ok({ afterUserId: text.slice(sep + 1) })
  const m = /^(0|[1-9][0-9]{0,15}):/.exec(text.slice(sep + 1))
  const now = m === null ? NaN : Number(m[1])
  // A moment past 9999-12-31 was never written by this API (and would overflow date arithmetic).
  if (m === null || now > MAX_CURSOR_NOW || text.length === sep + 1 + m[0].length) return bad
  return ok({ afterUserId: text.slice(sep + 1 + m[0].length), now })
}
