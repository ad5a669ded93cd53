import type { FastifyInstance } from 'fastify'
import { parsePasswordBody } from '../../core/admin.js'
import { TraitbaseError, validationError } from '../../core/errors.js'
import { ADMIN_PASSWORD_SETTING, verifyPassword } from '../../storage/admin-password.js'
import type { Store } from '../../storage/store.js'
import type { Clock } from '../envelope.js'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { AdminAuth } from './admin-auth.js'
import { ADMIN_SCHEMAS } from './schemas.js'

/** Sign-in throttling: failures counted in the database, so every server process shares them. */
export interface LoginLimits {
  /** Window in which failures count. Default 15 minutes. */
  readonly windowMs: number
  /** Failures from one client address within the window before it must wait. Default 5. */
  readonly perIp: number
  /** Failures from everywhere within the window before everyone must wait. Default 50. */
  readonly global: number
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { windowMs: 15 * 60_000, perIp: 5, global: 50 }

export interface SessionRoutesDeps {
  readonly store: Store
  readonly auth: AdminAuth
  readonly now: Clock
  readonly envPassword: string | undefined
  readonly limits: LoginLimits
}

const NO_PASSWORD =
  'No admin password is set: run "npx traitbase admin set-password" on the server, or start it with TRAITBASE_ADMIN_PASSWORD'

function sameSecret(a: string, b: string): boolean {
  // Compare digests: equal length whatever the inputs, so the time says nothing about the password.
  const h = (s: string) => createHash('sha256').update(s.normalize('NFC'), 'utf8').digest()
  return timingSafeEqual(h(a), h(b))
}

/** `GET|POST|DELETE /admin/api/session`: the console's sign-in state, sign-in and sign-out. */
export function registerSessionRoutes(app: FastifyInstance, deps: SessionRoutesDeps): void {
  const { store, auth, now, envPassword, limits } = deps

  app.get('/admin/api/session', { schema: ADMIN_SCHEMAS.getSession }, async (request) => {
    const session = await auth.sessionOf(request)
    return {
      password_set: await auth.passwordSet(),
      signed_in: session !== undefined,
      csrf_token: session?.csrfToken ?? null,
    }
  })

  app.post('/admin/api/session', { schema: ADMIN_SCHEMAS.signIn }, async (request, reply) => {
    const parsed = parsePasswordBody(request.body)
    if (!parsed.ok) throw validationError(parsed.error)
    const stored = await store.getSetting(ADMIN_PASSWORD_SETTING)
    if (envPassword === undefined && stored === undefined) throw new TraitbaseError('CONFLICT', NO_PASSWORD)

    const at = now()
    const since = new Date(at - limits.windowMs)
    for (const ip of [request.ip, null]) {
      const { count, oldest } = await store.countLoginFailures(ip, since)
      if (count >= (ip === null ? limits.global : limits.perIp)) {
        const wait = Math.max(1, Math.ceil((Date.parse(oldest as string) + limits.windowMs - at) / 1000))
        reply.header('retry-after', String(wait))
        throw new TraitbaseError(
          'RATE_LIMITED',
          `Too many failed sign-ins ${ip === null ? 'on this server' : 'from this address'}; try again in ${wait} s`,
        )
      }
    }

    const { password } = parsed.value
    const good =
      (envPassword !== undefined && sameSecret(password, envPassword)) ||
      (stored !== undefined && (await verifyPassword(password, stored)))
    if (!good) {
      await store.recordLoginFailure(request.ip, new Date(at))
      throw new TraitbaseError('UNAUTHORIZED', 'Wrong password')
    }
    await store.clearLoginFailures(request.ip)
    const csrf = await auth.startSession(request, reply)
    return { password_set: true, signed_in: true, csrf_token: csrf }
  })

  app.delete('/admin/api/session', { schema: ADMIN_SCHEMAS.signOut }, async (request, reply) => {
    const session = await auth.sessionOf(request)
    if (session !== undefined) auth.checkCsrf(request, session)
    await auth.endSession(request, reply)
    return { password_set: await auth.passwordSet(), signed_in: false, csrf_token: null }
  })
}
