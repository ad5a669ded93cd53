import type { FastifyInstance } from 'fastify'
import type { SegmentIndex } from '../../segments/segment-index.js'
import { authOf, type Auth } from '../auth.js'
import { success, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'

export interface AttributeRoutesDeps {
  readonly auth: Auth
  readonly now: Clock
  readonly index: SegmentIndex
  /** Path prefix. Default `/v1/user`; the admin API mounts the route per project. */
  readonly base?: string
}

/**
 * `GET /v1/user/attributes`: the project's attribute catalog for segment builders — each attribute
 * with its user count and, for attributes with at most 1000 distinct values, the 20 most common.
 */
export function registerAttributeRoutes(
  app: FastifyInstance,
  { auth, now, index, base = '/v1/user' }: AttributeRoutesDeps,
): void {
  app.get(`${base}/attributes`, { onRequest: auth.requireScope('profiles:read') }, async (request, reply) => {
    const { projectId } = authOf(request)
    const project = await index.sync(projectId)
    const attributes = project.catalog().map((a) => ({
      name: a.name,
      users: a.users,
      distinct_values: a.distinctValues,
      top_values: a.topValues,
    }))
    return reply.send(success(now, { users: project.users, attributes }))
  })
  addMethodNotAllowed(app, now, `${base}/attributes`, ['GET'])
}
