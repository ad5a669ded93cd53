import type { FastifyInstance } from 'fastify'
import { parseUserListQuery } from '../../core/admin.js'
import { TraitbaseError, validationError } from '../../core/errors.js'
import { sortedByKey } from '../../core/text.js'
import type { Store } from '../../storage/store.js'
import { projectOf } from './project-routes.js'
import { ADMIN_SCHEMAS } from './schemas.js'

type UserParams = { Params: { project_id: string; user_id: string } }

/** Users of a project: list by id prefix with keyset paging, look one up, delete one. */
export function registerUserRoutes(app: FastifyInstance, store: Store): void {
  app.get('/admin/api/projects/:project_id/users', { schema: ADMIN_SCHEMAS.listUsers }, async (request) => {
    const project = await projectOf(store, request)
    const parsed = parseUserListQuery(request.query as Record<string, unknown>)
    if (!parsed.ok) throw validationError(parsed.error)
    const { prefix, after, limit } = parsed.value
    // One more than asked tells whether there is a next page without a second query.
    const rows = await store.listUsers(project.id, {
      limit: limit + 1,
      ...(prefix === undefined ? {} : { prefix }),
      ...(after === undefined ? {} : { afterUserId: after }),
    })
    const page = rows.slice(0, limit)
    return {
      users: page.map((u) => ({ user_id: u.userId, created_at: u.createdAt, updated_at: u.updatedAt })),
      next_after: rows.length > limit ? (page[page.length - 1]?.userId ?? null) : null,
    }
  })

  app.get<UserParams>(
    '/admin/api/projects/:project_id/users/:user_id',
    { schema: ADMIN_SCHEMAS.getUser },
    async (request) => {
      const project = await projectOf(store, request)
      const profile = await store.getProfile(project.id, request.params.user_id)
      if (profile === undefined) throw new TraitbaseError('NOT_FOUND', 'No user with this user_id in this project')
      return {
        user_id: profile.userId,
        attributes: sortedByKey(profile.attributes),
        created_at: profile.createdAt,
        updated_at: profile.updatedAt,
      }
    },
  )

  app.delete<UserParams>(
    '/admin/api/projects/:project_id/users/:user_id',
    { schema: ADMIN_SCHEMAS.deleteUser },
    async (request) => {
      const project = await projectOf(store, request)
      if (!(await store.deleteProfile(project.id, request.params.user_id))) {
        throw new TraitbaseError('NOT_FOUND', 'No user with this user_id in this project')
      }
      return { deleted: true }
    },
  )
}
