import { createHash, randomBytes, timingSafeEqual as bytesEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { TraitbaseError } from '../../core/errors.js'
import { hashApiKey, looksLikeAdminToken, looksLikeApiKey, timingSafeEqual } from '../../storage/api-keys.js'
import { ADMIN_PASSWORD_SETTING } from '../../storage/admin-password.js'
import type { AdminSession, Store } from '../../storage/store.js'
import type { Clock } from '../envelope.js'

/** The console's session cookie. */
export const SESSION_COOKIE = 'tb_session'
/** The header a cookie-authenticated state-changing request must carry (the session's `csrf_token`). */
export const CSRF_HEADER = 'x-csrf-token'

/** Who is calling the admin API; `actor` goes into the key event log. */
export interface AdminCaller {
  readonly kind: 'session' | 'token'
  /** `session` or `token:tok_…`. */
  readonly actor: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admin auth hook on /admin/api routes. */
    admin: AdminCaller | null
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** A session's expiry is pushed forward at most this often (one write per 5 minutes of use). */
const SLIDE_EVERY_MS = 5 * 60_000
const TOUCH_EVERY_MS = 60_000

export interface AdminAuth {
  /** `onRequest` hook of every /admin/api route but the session ones: 401/403 or sets `request.admin`. */
  requireAdmin(request: FastifyRequest, reply?: FastifyReply): Promise<void>
  /**
   * The valid session of this request's cookie, if any (no CSRF check). With `reply`, a session whose
   * expiry moved forward gets its cookie renewed too, so the browser keeps it as long as the server does.
   */
  sessionOf(request: FastifyRequest, reply?: FastifyReply): Promise<AdminSession | undefined>
  /** True when a console password is set (environment or database). */
  passwordSet(): Promise<boolean>
  /** Starts a session: stores it and sets the cookie; returns its CSRF token. */
  startSession(request: FastifyRequest, reply: FastifyReply): Promise<string>
  /** Ends this request's session (if any) and clears the cookie. */
  endSession(request: FastifyRequest, reply: FastifyReply): Promise<void>
  /** Throws 403 unless the request carries the session's CSRF token. */
  checkCsrf(request: FastifyRequest, session: AdminSession): void
}

export interface AdminAuthOptions {
  readonly store: Store
  readonly now: Clock
  readonly envPassword: string | undefined
  readonly sessionHours: number
}

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex')
}

/** Reads one cookie from the `Cookie` header (RFC 6265 §5.4: `name=value` pairs separated by `;`). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * Admin authentication: a console session cookie (HttpOnly, SameSite=Strict, Secure when the
 * request came over HTTPS, directly or as `X-Forwarded-Proto: https` from a trusted proxy) with a
 * CSRF token on state-changing requests, or `Authorization: Bearer tba_…`. API keys never pass.
 * Sessions live in the database, so every server process on it accepts them.
 */
export function createAdminAuth({ store, now, envPassword, sessionHours }: AdminAuthOptions): AdminAuth {
  const ttlMs = sessionHours * 3600_000
  const lastTouch = new Map<string, number>()

  const sessionOf = async (request: FastifyRequest, reply?: FastifyReply): Promise<AdminSession | undefined> => {
    const secret = readCookie(request.headers.cookie, SESSION_COOKIE)
    if (secret === undefined || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return undefined
    const session = await store.findSession(sha256(secret))
    if (session === undefined || Date.parse(session.expiresAt) <= now()) return undefined
    // Sliding expiry: a session in use stays open; the write happens at most every few minutes.
    const at = now()
    if (Date.parse(session.expiresAt) - at < ttlMs - SLIDE_EVERY_MS) {
      store.extendSession(session.idHash, new Date(at + ttlMs)).catch((error: unknown) => {
        request.log.warn({ err: error }, 'could not extend the console session')
      })
      reply?.header('set-cookie', cookie(request, secret, Math.floor(ttlMs / 1000)))
    }
    return session
  }

  const checkCsrf = (request: FastifyRequest, session: AdminSession): void => {
    if (SAFE_METHODS.has(request.method)) return
    const given = request.headers[CSRF_HEADER]
    const a = Buffer.from(typeof given === 'string' ? given : '')
    const b = Buffer.from(session.csrfToken)
    if (a.length !== b.length || !bytesEqual(a, b)) {
      throw new TraitbaseError(
        'FORBIDDEN',
        'Missing or wrong X-CSRF-Token header: send the csrf_token from GET /admin/api/session',
      )
    }
  }

  const byToken = async (request: FastifyRequest, header: string): Promise<AdminCaller> => {
    const secret = BEARER.exec(header)?.[1]
    if (secret === undefined) {
      throw new TraitbaseError('UNAUTHORIZED', 'Malformed Authorization header: expected "Bearer <admin token>"')
    }
    if (looksLikeApiKey(secret)) {
      throw new TraitbaseError(
        'UNAUTHORIZED',
        'API keys (tbk_…) do not open the admin API: sign in to the console or use an admin token from "traitbase admin token create"',
      )
    }
    const hash = looksLikeAdminToken(secret) ? hashApiKey(secret) : undefined
    const token = hash === undefined ? undefined : await store.findAdminTokenByHash(hash)
    if (hash === undefined || token === undefined || !timingSafeEqual(token.hash, hash)) {
      throw new TraitbaseError('UNAUTHORIZED', 'Unknown admin token: create one with "traitbase admin token create"')
    }
    if (token.revokedAt !== null) throw new TraitbaseError('UNAUTHORIZED', 'This admin token has been revoked')
    const at = now()
    if ((lastTouch.get(token.id) ?? 0) < at - TOUCH_EVERY_MS) {
      lastTouch.set(token.id, at)
      store.touchAdminToken(token.id, new Date(at)).catch(() => undefined)
    }
    return { kind: 'token', actor: `token:${token.id}` }
  }

  return {
    async requireAdmin(request, reply) {
      const header = request.headers.authorization
      if (header !== undefined && header !== '') {
        request.admin = await byToken(request, header)
        return
      }
      const session = await sessionOf(request, reply)
      if (session === undefined) {
        throw new TraitbaseError(
          'UNAUTHORIZED',
          'Not signed in: sign in to the console (POST /admin/api/session) or send "Authorization: Bearer <admin token>"',
        )
      }
      checkCsrf(request, session)
      request.admin = { kind: 'session', actor: 'session' }
    },
    sessionOf,
    checkCsrf,
    async passwordSet() {
      return envPassword !== undefined || (await store.getSetting(ADMIN_PASSWORD_SETTING)) !== undefined
    },
    async startSession(request, reply) {
      const secret = randomBytes(32).toString('base64url')
      const csrfToken = randomBytes(32).toString('base64url')
      await store.createSession({ idHash: sha256(secret), csrfToken, expiresAt: new Date(now() + ttlMs) })
      reply.header('set-cookie', cookie(request, secret, Math.floor(ttlMs / 1000)))
      return csrfToken
    },
    async endSession(request, reply) {
      const secret = readCookie(request.headers.cookie, SESSION_COOKIE)
      if (secret !== undefined) await store.deleteSession(sha256(secret))
      reply.header('set-cookie', cookie(request, '', 0))
    },
  }
}

/**
 * The cookie's attributes. `Max-Age` matches the server-side expiry; the server's expiry is the one
 * that counts (sliding), the browser's only bounds how long it keeps sending a dead cookie.
 */
function cookie(request: FastifyRequest, value: string, maxAge: number): string {
  // request.protocol is "https" for TLS sockets, and for X-Forwarded-Proto: https only with TRUST_PROXY.
  const secure = request.protocol === 'https' ? '; Secure' : ''
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`
}
