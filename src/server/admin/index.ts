import type { FastifyInstance, FastifyRequest, HTTPMethods } from 'fastify'
import { addMethodNotAllowed } from '../errors.js'
import { isJsonObject } from '../../core/json-value.js'
import { TraitbaseError } from '../../core/errors.js'
import { SCOPES } from '../../core/scopes.js'
import type { SegmentIndex } from '../../segments/segment-index.js'
import type { Store } from '../../storage/store.js'
import type { Auth } from '../auth.js'
import type { Config } from '../config.js'
import type { Clock } from '../envelope.js'
import type { ParsedQuery } from '../query.js'
import { registerAttributeRoutes } from '../routes/attributes.js'
import { registerSegmentRoutes } from '../routes/segments.js'
import { createAdminAuth } from './admin-auth.js'
import { projectOf, registerProjectRoutes } from './project-routes.js'
import { registerRequestLogRoutes } from './request-log-routes.js'
import { DEFAULT_LOGIN_LIMITS, registerSessionRoutes, type LoginLimits } from './session-routes.js'
import { registerUserRoutes } from './user-routes.js'

export interface AdminApiDeps {
  readonly store: Store
  readonly config: Config
  readonly now: Clock
  /** The process's segment index, shared with /v1; undefined with SEGMENTS=off. */
  readonly index: SegmentIndex | undefined
  readonly loginLimits?: LoginLimits
}

/**
 * Everything under /admin/api. Success bodies are the data itself (no `{msg, timestamp}` envelope);
 * failures use the /v1 envelope. Every route but the session ones needs the console session (with
 * X-CSRF-Token on state changes) or an admin token.
 */
export function registerAdminApi(app: FastifyInstance, deps: AdminApiDeps): void {
  const { store, config, now } = deps
  const auth = createAdminAuth({
    store,
    now,
    envPassword: config.admin.password,
    sessionHours: config.admin.sessionHours,
  })
  app.decorateRequest('admin', null)

  // Explicit 405s (with Allow) for the admin paths, as for /v1.
  const allowed: [string, HTTPMethods[]][] = [
    ['/admin/api/session', ['GET', 'POST', 'DELETE']],
    ['/admin/api/projects', ['GET', 'POST']],
    ['/admin/api/projects/:project_id', ['GET', 'PATCH']],
    ['/admin/api/projects/:project_id/keys', ['GET', 'POST']],
    ['/admin/api/projects/:project_id/keys/:key_id/revoke', ['POST']],
    ['/admin/api/projects/:project_id/keys/:key_id/rotate', ['POST']],
    ['/admin/api/projects/:project_id/key-events', ['GET']],
    ['/admin/api/projects/:project_id/requests', ['GET']],
    ['/admin/api/projects/:project_id/users', ['GET']],
    ['/admin/api/projects/:project_id/users/:user_id', ['GET', 'DELETE']],
  ]
  for (const [url, methods] of allowed) addMethodNotAllowed(app, now, url, methods)

  void app.register(async (api) => {
    registerSessionRoutes(api, {
      store,
      auth,
      now,
      envPassword: config.admin.password,
      limits: deps.loginLimits ?? DEFAULT_LOGIN_LIMITS,
    })
  })

  void app.register(async (api) => {
    api.addHook('onRequest', async (request, reply) => auth.requireAdmin(request, reply))
    registerProjectRoutes(api, { store, now })
    registerRequestLogRoutes(api, store)
    registerUserRoutes(api, store)
  })

  // The /v1 segment and catalog routes, mounted per project: same code, same answers (unwrapped).
  if (deps.index !== undefined) {
    const index = deps.index
    void app.register(async (api) => {
      const asProject: Auth = {
        requireScope: () => async (request) => {
          await auth.requireAdmin(request)
          const project = await projectOf(store, request)
          request.auth = {
            projectId: project.id,
            keyId: 'admin',
            keyLabel: 'admin',
            scopes: [...SCOPES],
            rateLimit: null,
          }
        },
      }
      api.addHook('preHandler', async (request) => exportFormat(request))
      api.addHook('preSerialization', async (_request, _reply, payload: unknown) => unwrap(payload))
      const base = '/admin/api/projects/:project_id'
      registerSegmentRoutes(api, { store, auth: asProject, now, index, base })
      registerAttributeRoutes(api, { store, auth: asProject, now, index, base })
    })
  }
}

/** `{msg: "Success", timestamp, data}` → `data`; a success without data (a delete) → `{deleted: true}`. */
function unwrap(payload: unknown): unknown {
  if (!isJsonObject(payload) || payload['msg'] !== 'Success' || typeof payload['timestamp'] !== 'number') return payload
  return 'data' in payload ? payload['data'] : { deleted: true }
}

/**
 * Exports also take `?format=csv|ndjson` (GET) or `"format"` in the body (POST), which a browser's
 * download can set more easily than `Accept`; it is turned into the `Accept` the /v1 code negotiates.
 */
function exportFormat(request: FastifyRequest): void {
  if (!(request.routeOptions.url ?? '').endsWith('/export')) return
  let format = (request.query as ParsedQuery)['format']
  const body = request.body
  if (request.method === 'POST' && isJsonObject(body) && 'format' in body) {
    format = body['format'] as string
    delete body['format']
  }
  if (format === undefined) return
  if (format !== 'csv' && format !== 'ndjson') {
    throw new TraitbaseError('BAD_REQUEST', 'format: must be csv or ndjson')
  }
  request.raw.headers.accept = format === 'csv' ? 'text/csv' : 'application/x-ndjson'
}
