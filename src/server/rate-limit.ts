import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import { TraitbaseError } from '../core/errors.js'

/**
 * Per-key rate limiting (`RATE_LIMIT` requests per minute per API key; 0 = off, the default).
 * It runs before the body is read (preParsing), after the route's auth hook, so the bucket is the
 * key id, not the client address, and a throttled client cannot make us read and parse 8 MiB bodies: one customer's backfill cannot starve another's. Requests without a key
 * (`/healthz`, `/metrics`, 401s) are not counted. Counters live in this process: with N servers
 * behind a balancer, a key gets up to N × the limit.
 */
export async function registerRateLimit(app: FastifyInstance, perMinute: number): Promise<void> {
  if (perMinute <= 0) return
  await app.register(rateLimit, {
    global: true,
    hook: 'preParsing',
    max: perMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => request.auth?.keyId ?? request.ip,
    allowList: (request) => request.auth === null,
    errorResponseBuilder: (_request, context) =>
      new TraitbaseError(
        'RATE_LIMITED',
        `Rate limit of ${context.max} requests per minute for this key exceeded; retry in ${context.after}`,
      ),
  })
}
