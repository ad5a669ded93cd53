import type { FastifyInstance, FastifyRequest } from 'fastify'
import { TraitbaseError, validationError } from '../../core/errors.js'
import { sortedByKey } from '../../core/text.js'
import { parseUploadBody } from '../../core/upload.js'
import type { Store } from '../../storage/store.js'
import { authOf, type Auth } from '../auth.js'
import { success, successText, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'
import { idempotencyKeyOf, runIdempotent, startIdempotencyPruning } from '../idempotency.js'
import type { ParsedQuery } from '../query.js'
import type { Metrics } from '../metrics.js'

export interface ProfileRoutesDeps {
  readonly store: Store
  readonly auth: Auth
  readonly metrics: Metrics
  readonly now: Clock
}

/**
 * `POST /v1/user/profiles` (the spec's upload), `GET` and `DELETE /v1/user/profiles/:user_id`, and the
 * same two as `/v1/user/profiles?user_id=…`.
 */
export function registerProfileRoutes(app: FastifyInstance, { store, auth, metrics, now }: ProfileRoutesDeps): void {
  const canWrite = auth.requireScope('profiles:write')
  const canRead = auth.requireScope('profiles:read')

  app.post('/v1/user/profiles', { onRequest: canWrite }, async (request, reply) => {
    const { projectId } = authOf(request)
    // Read first: a bad dry_run is refused before anything else is looked at.
    const dryRun = dryRunOf(request.query)
    request.dryRun = dryRun
    if (request.body === undefined) {
      throw new TraitbaseError('BAD_REQUEST', 'Request body is required: a JSON object with "field_name" and "values"')
    }
    const idempotencyKey = idempotencyKeyOf(request)
    const parsed = parseUploadBody(request.body)
    if (!parsed.ok) throw validationError(parsed.error)
    // A dry run answers what the upload would answer, every check included, and writes nothing.
    if (dryRun) return reply.type('application/json; charset=utf-8').send(successText(now))
    const upload = async (): Promise<string> => {
      const outcome = await store.applyUpload(projectId, parsed.value)
      request.uploadOutcome = outcome
      metrics.recordUpload(outcome)
      return successText(now)
    }
    if (idempotencyKey !== undefined) {
      return runIdempotent({ store, now, projectId, key: idempotencyKey, body: request.body }, request, reply, upload)
    }
    return reply.type('application/json; charset=utf-8').send(await upload())
  })
  const stopPruning = startIdempotencyPruning(store, now, app.log)
  app.addHook('onClose', (_instance, done) => {
    stopPruning()
    done()
  })

  const readProfile = async (projectId: number, userId: string) => {
    const profile = userId === '' ? undefined : await store.getProfile(projectId, userId)
    if (profile === undefined) throw new TraitbaseError('NOT_FOUND', 'No user with this user_id in this project')
    return success(now, {
      user_id: profile.userId,
      attributes: sortedByKey(profile.attributes),
      created_at: profile.createdAt,
      updated_at: profile.updatedAt,
    })
  }
  const eraseProfile = async (projectId: number, userId: string) => {
    const deleted = userId !== '' && (await store.deleteProfile(projectId, userId))
    if (!deleted) throw new TraitbaseError('NOT_FOUND', 'No user with this user_id in this project')
    return success(now)
  }

  app.get<{ Params: { user_id: string } }>('/v1/user/profiles/:user_id', { onRequest: canRead }, async (request) =>
    readProfile(authOf(request).projectId, pathUserId(request)),
  )
  app.delete<{ Params: { user_id: string } }>('/v1/user/profiles/:user_id', { onRequest: canWrite }, async (request) =>
    eraseProfile(authOf(request).projectId, pathUserId(request)),
  )
  // The same by query string, for ids no path can carry: URL parsers resolve `.` and `..` (even as
  // %2E) as dot segments before a request is sent.
  app.get('/v1/user/profiles', { onRequest: canRead }, async (request) =>
    readProfile(authOf(request).projectId, userIdQuery(request.query)),
  )
  app.delete('/v1/user/profiles', { onRequest: canWrite }, async (request) =>
    eraseProfile(authOf(request).projectId, userIdQuery(request.query)),
  )
  addMethodNotAllowed(app, now, '/v1/user/profiles', ['POST', 'GET', 'DELETE'])
  addMethodNotAllowed(app, now, '/v1/user/profiles/:user_id', ['GET', 'DELETE'])
}

/** `?dry_run=true|1` (or false|0, or absent: a real upload). */
function dryRunOf(query: unknown): boolean {
  const value = (query as ParsedQuery)['dry_run']
  if (value === undefined) return false
  if (value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw new TraitbaseError('BAD_REQUEST', 'dry_run: must be true or false (given once)')
}

/** The id from the path; naming a user in the query string too would be ambiguous. */
function pathUserId(request: FastifyRequest<{ Params: { user_id: string } }>): string {
  if ((request.query as ParsedQuery)['user_id'] !== undefined) {
    throw new TraitbaseError('BAD_REQUEST', 'Give the user id in the path or in the user_id query parameter, not both')
  }
  return request.params.user_id
}

/** `?user_id=` (decoded strictly by the router's query parser: a bad escape never gets here). */
function userIdQuery(query: unknown): string {
  const value = (query as ParsedQuery)['user_id']
  if (typeof value === 'string' && value !== '') return value
  throw new TraitbaseError(
    'BAD_REQUEST',
    Array.isArray(value)
      ? 'Give the user_id query parameter once'
      : 'The user_id query parameter is required: /v1/user/profiles?user_id=ID, or /v1/user/profiles/ID',
  )
}
