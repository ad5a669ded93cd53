import type { FastifyInstance } from 'fastify'
import { parseRequestLogQuery } from '../../core/admin.js'
import { validationError } from '../../core/errors.js'
import type { Store } from '../../storage/store.js'
import { presentRequest } from './present.js'
import { projectOf } from './project-routes.js'
import { ADMIN_SCHEMAS } from './schemas.js'

/**
 * `GET /admin/api/projects/:id/requests`: newest first. Page back with `before=<next_before>`;
 * poll for new entries with `after=<newest id seen>` (entries appear within a flush interval).
 */
export function registerRequestLogRoutes(app: FastifyInstance, store: Store): void {
  app.get('/admin/api/projects/:project_id/requests', { schema: ADMIN_SCHEMAS.requests }, async (request) => {
    const project = await projectOf(store, request)
    const parsed = parseRequestLogQuery(request.query as Record<string, unknown>)
    if (!parsed.ok) throw validationError(parsed.error)
    const rows = await store.listRequestLog(project.id, parsed.value)
    const last = rows[rows.length - 1]
    return {
      requests: rows.map(presentRequest),
      next_before: rows.length === parsed.value.limit && last !== undefined ? last.id : null,
    }
  })
}
