import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { TraitbaseError } from '../core/errors.js'

/** Fixed windows of one minute: `RATE_LIMIT` and project limits are requests per minute per key. */
const WINDOW_SECONDS = 60
/** Points per window the library itself allows: never reached, each request's own limit decides. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER
/**
 * A Redis that does not answer within this is treated as down: a request never waits longer for its
 * count. Redis itself answers in well under a millisecond; the timer runs on this process's event
 * loop, so 250 ms also fired when the server's own loop was briefly busy (two processes on two
 * loaded cores in CI let 18 of 30 requests through a limit of 10 by failing open).
 */
const REDIS_COMMAND_TIMEOUT_MS = 1_000
/** The policy's name in the `RateLimit-Policy` and `RateLimit` fields. */
const POLICY = '"per-key"'

export interface RateLimitOptions {
  /** The server's limit per key per minute (`RATE_LIMIT`); 0 = none unless the project sets one. */
  readonly perMinute: number
  /** `REDIS_URL`: counters shared by every process using it; without it, counted in this process. */
  readonly redisUrl: string | undefined
}

/**
 * Per-key rate limiting with rate-limiter-flexible: in Redis when `REDIS_URL` is set (every server
 * process counts against one budget per key), in process memory otherwise. A project's own limit
 * (`traitbase projects rate-limit --project NAME LIMIT`, read with the key on every request) replaces `RATE_LIMIT` for
 * its keys; 0 turns limiting off for them.
 *
 * It runs before the body is read (preParsing), after the route's auth hook, so the bucket is the
 * key id, not the client address, and a throttled client cannot make us read and parse 8 MiB bodies.
 * Requests without a key (`/healthz`, `/metrics`, 401s) are not counted.
 *
 * Answers carry the IETF httpapi ratelimit-headers fields (draft -10): `RateLimit-Policy:
 * "per-key";q=LIMIT;w=60` and `RateLimit: "per-key";r=REMAINING;t=SECONDS`, and a 429 carries
 * `Retry-After`. Redis down or slow: requests pass uncounted (fail open) and one warning is logged
 * per outage, not per request; its recovery is logged too.
 */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const redis =
    options.redisUrl === undefined
      ? undefined
      : new Redis(options.redisUrl, {
          // Fail fast while disconnected instead of queueing: the request goes on uncounted.
          enableOfflineQueue: false,
          commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
          maxRetriesPerRequest: 0,
          lazyConnect: false,
        })
  const outage = createOutageLog(app.log)
  // Without a handler, ioredis's connection errors would crash the process.
  redis?.on('error', (error: Error) => outage.down(error))
  redis?.on('ready', () => outage.up())
  // Start counting from the first request: wait for the connection (or its first failure) briefly.
  if (redis !== undefined && redis.status !== 'ready') {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        redis.off('ready', done)
        redis.off('error', done)
        resolve()
      }
      const timer = setTimeout(done, REDIS_COMMAND_TIMEOUT_MS * 4)
      redis.once('ready', done)
      redis.once('error', done)
    })
  }
  const limiter: RateLimiterAbstract =
    redis === undefined
      ? new RateLimiterMemory({ points: UNBOUNDED, duration: WINDOW_SECONDS })
      : new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: 'traitbase:ratelimit',
          points: UNBOUNDED,
          duration: WINDOW_SECONDS,
          rejectIfRedisNotReady: true,
        })

  app.addHook('preParsing', async (request: FastifyRequest, reply: FastifyReply, payload) => {
    const auth = request.auth
    if (auth === null) return payload
    const limit = auth.rateLimit ?? options.perMinute
    if (limit <= 0) return payload
    reply.header('ratelimit-policy', `${POLICY};q=${limit};w=${WINDOW_SECONDS}`)
    let used: number
    let resetMs: number
    try {
      const res = await limiter.consume(auth.keyId, 1)
      used = res.consumedPoints
      resetMs = res.msBeforeNext
      outage.up()
    } catch (error) {
      outage.down(error)
      return payload
    }
    const seconds = Math.max(1, Math.ceil(resetMs / 1000))
    reply.header('ratelimit', `${POLICY};r=${Math.max(0, limit - used)};t=${seconds}`)
    if (used > limit) {
      reply.header('retry-after', String(seconds))
      throw new TraitbaseError(
        'RATE_LIMITED',
        `Rate limit of ${limit} requests per minute for this key exceeded; retry in ${seconds} seconds`,
      )
    }
    return payload
  })
  app.addHook('onClose', async () => {
    if (redis !== undefined) await redis.quit().catch(() => redis.disconnect())
  })
}

/** Logs the first failure of an outage and the recovery, once each, whatever the request rate. */
function createOutageLog(log: FastifyBaseLogger) {
  let down = false
  return {
    down(error: unknown): void {
      if (down) return
      down = true
      log.warn(
        { err: error },
        'rate limiting: Redis unavailable, requests pass uncounted (fail open) until it answers again',
      )
    },
    up(): void {
      if (!down) return
      down = false
      log.info('rate limiting: Redis answers again, requests are counted')
    },
  }
}
