import type { FastifyRequest } from 'fastify'
import { TraitbaseError } from '../core/errors.js'
import type { Scope } from '../core/scopes.js'
import { hashApiKey, looksLikeApiKey, timingSafeEqual } from '../storage/api-keys.js'
import type { Store } from '../storage/store.js'
import type { Clock } from './envelope.js'

/** Who is calling: set on the request by the auth hook, read by handlers. */
export interface AuthContext {
  readonly projectId: number
  readonly keyId: string
  /** The key's label, for the request log. */
  readonly keyLabel: string
  readonly scopes: readonly Scope[]
  /** The project's own requests per minute per key; null: the server's `RATE_LIMIT`. */
  readonly rateLimit: number | null
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireScope`'s hook; null on routes without auth. */
    auth: AuthContext | null
  }
}

/** `last_used_at` is written at most this often per key, so the hot path does not write on every request. */
export const TOUCH_INTERVAL_MS = 60_000

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i

const UNKNOWN_KEY = 'Unknown or revoked API key: check the key, or create one with "traitbase keys create"'

export interface Auth {
  /** An `onRequest` hook: 401 unless a valid, unrevoked key is sent; 403 unless it has `scope`. */
  requireScope(scope: Scope): (request: FastifyRequest) => Promise<void>
}

/**
 * Bearer-key authentication against the store. Every request looks its key up again (no cache), so a
 * revoked key is refused from the next request on.
 */
export function createAuth(store: Store, now: Clock): Auth {
  const lastTouch = new Map<string, number>()

  const touch = (request: FastifyRequest, keyId: string): void => {
    const at = now()
    const last = lastTouch.get(keyId)
    if (last !== undefined && at - last < TOUCH_INTERVAL_MS) return
    lastTouch.set(keyId, at)
    store.touchKey(keyId, new Date(at)).catch((error: unknown) => {
      request.log.warn({ err: error, keyId }, 'could not record key use')
    })
  }

  const authenticate = async (request: FastifyRequest): Promise<AuthContext> => {
    const header = request.headers.authorization
    if (header === undefined || header === '') {
      throw new TraitbaseError('UNAUTHORIZED', 'Missing Authorization header: send "Authorization: Bearer <API key>"')
    }
    if (authorizationHeaders(request.raw.rawHeaders) > 1) {
      // Node keeps the first and drops the rest; a proxy in front may have read another one.
      throw new TraitbaseError('UNAUTHORIZED', 'More than one Authorization header: send exactly one')
    }
    const secret = BEARER.exec(header)?.[1]
    if (secret === undefined) {
      throw new TraitbaseError('UNAUTHORIZED', 'Malformed Authorization header: expected "Bearer <API key>"')
    }
    // A well-formed header with a token that is not one of our keys (mistyped, cut short, from another
    // system) is an unknown key, not a malformed header. The shape check only spares the lookup.
    const hash = looksLikeApiKey(secret) ? hashApiKey(secret) : undefined
    const record = hash === undefined ? undefined : await store.findKeyByHash(hash)
    if (hash === undefined || record === undefined || !timingSafeEqual(record.hash, hash)) {
      throw new TraitbaseError('UNAUTHORIZED', UNKNOWN_KEY)
    }
    if (record.revokedAt !== null) throw new TraitbaseError('UNAUTHORIZED', 'This API key has been revoked')
    // A rotated key works until the end of its grace period, then stops by itself.
    if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now()) {
      throw new TraitbaseError(
        'UNAUTHORIZED',
        `This API key expired at ${record.expiresAt} (it was rotated): use its replacement`,
      )
    }
    touch(request, record.id)
    return {
      projectId: record.projectId,
      keyId: record.id,
      keyLabel: record.label,
      scopes: record.scopes,
      rateLimit: record.projectRateLimit,
    }
  }

  return {
    requireScope(scope) {
      return async (request) => {
        const auth = await authenticate(request)
        request.auth = auth
        if (!auth.scopes.includes(scope)) {
          throw new TraitbaseError('FORBIDDEN', `This API key lacks the "${scope}" scope needed here`)
        }
      }
    },
  }
}

/** Narrows `request.auth` inside handlers that run behind `requireScope`. */
export function authOf(request: FastifyRequest): AuthContext {
  if (request.auth === null) throw new TraitbaseError('INTERNAL', 'route is missing its auth hook')
  return request.auth
}

function authorizationHeaders(raw: readonly string[]): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === 'authorization') n++
  return n
}
