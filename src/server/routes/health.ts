import type { FastifyInstance } from 'fastify'
import type { Store } from '../../storage/store.js'
import { failure, success, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'

/** A database that takes longer than this to answer a ping counts as down. */
export const PING_TIMEOUT_MS = 2_000

/** `GET /healthz`: 200 when the database answers a ping in time, 503 when not. No auth, for load balancers. */
export function registerHealthRoutes(app: FastifyInstance, store: Store, now: Clock): void {
  app.get('/healthz', async (request, reply) => {
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        store.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`ping took over ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS)
        }),
      ])
      return reply.send(success(now, { status: 'ok', store: store.kind }))
    } catch (error) {
      request.log.warn({ err: error }, 'health check failed')
      return reply.code(503).send(failure(now, 'Database unavailable'))
    } finally {
      clearTimeout(timer)
    }
  })
  addMethodNotAllowed(app, now, '/healthz', ['GET'])
}
