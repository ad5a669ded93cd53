import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { API_KEY_PREFIX } from '../storage/api-keys.js'
import type { Store } from '../storage/store.js'
import { createAuth } from './auth.js'
import type { Config } from './config.js'
import { failure, type Clock } from './envelope.js'
import {
  CLIENT_GONE,
  createClientErrorHandler,
  createFrameworkErrorHandler,
  isClientGone,
  registerErrorHandlers,
} from './errors.js'
import { registerJsonBodyParser } from './json-body.js'
import { MALFORMED_QUERY, parseQueryString, type ParsedQuery } from './query.js'
import { createMetrics, registerMetrics, type Metrics } from './metrics.js'
import { registerHealthRoutes } from './routes/health.js'
import { registerConsoleRoutes } from './routes/console.js'
import { registerProfileRoutes } from './routes/profiles.js'
import { registerRateLimit } from './rate-limit.js'
import { registerAttributeRoutes } from './routes/attributes.js'
import { registerSegmentRoutes } from './routes/segments.js'
import { SegmentIndex } from '../segments/segment-index.js'
import type { FeedSource } from '../segments/index-builder.js'
import fastifyPlugin from 'fastify-plugin'
import { registerAdminApi } from './admin/index.js'
import { registerOpenApi } from './admin/openapi.js'
import { RequestLogWriter, registerRequestLogHooks } from './admin/request-log.js'
import type { LoginLimits } from './admin/session-routes.js'

export interface AppDeps {
  readonly store: Store
  readonly config: Config
  /** Milliseconds since the epoch; default `Date.now`. Drives every response `timestamp`. */
  readonly now?: Clock
  /** PEM key and certificate: the server speaks HTTPS. Default none (plain HTTP behind a TLS proxy). */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer }
  /** Default: a fresh registry with Node's process metrics. */
  readonly metrics?: Metrics
  /** Where log lines go; default stdout. Tests capture them here. */
  readonly logStream?: { write(line: string): unknown }
  /** Sign-in throttling of the console; default 5 failures per address and 50 overall per 15 minutes. */
  readonly loginLimits?: LoginLimits
  /**
   * Where segment index builds read the store from a worker thread of their own (`feedSourceOf` of
   * the store's URL). Default none: indexes are built on the event loop, in slices.
   */
  readonly indexBuildSource?: FeedSource
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Writes the buffered request log now (tests; shutdown does it by itself). */
    flushRequestLog(): Promise<void>
  }
}

/**
 * A user id is at most 128 code points, 12 bytes each when percent-encoded as 4-byte UTF-8; longer
 * path parameters cannot name anything (404).
 */
const MAX_PARAM_LENGTH = 1536

/** A client's `X-Request-Id` is kept only when it is short and plain, so it is safe in logs and headers. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/

function generateRequestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  // An API key pasted into the wrong header must not end up in our logs.
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) && !given.toLowerCase().startsWith(API_KEY_PREFIX)
    ? given
    : randomUUID()
}

/** What request logs carry: the route pattern, never the URL (user ids) nor any header (keys). */
function serializeRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    route: request.routeOptions?.url ?? '(unmatched)',
    remoteAddress: request.ip,
  }
}

/** One log line per request, when it completes, instead of Fastify's two: half the logging on the hot path. */
class OneLineLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (isClientGone(error)) request.log.info({ req: request, responseTime: reply.elapsedTime }, CLIENT_GONE)
    else if (error)
      request.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/**
 * Builds the HTTP app with everything registered, in the order below. Never listens: `main.ts` does,
 * tests use `inject()` or `listen({port: 0})`.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { store, config } = deps
  const now = deps.now ?? Date.now
  const t = config.timeouts
  // Node's own server limits; the checking interval must be short or the header/request timeouts fire late.
  const metrics = deps.metrics ?? createMetrics()
  const serverOptions = {
    headersTimeout: t.headersMs,
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.keepAliveMs,
    connectionsCheckingInterval: t.checkIntervalMs,
    // Node would answer a missing Host with an empty 400; we answer it in our envelope (onRequest below).
    requireHostHeader: false,
  }
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
      serializers: { req: serializeRequest },
      ...(deps.logStream === undefined ? {} : { stream: deps.logStream }),
    },
    logController: new OneLineLogController(),
    genReqId: generateRequestId,
    requestIdHeader: false,
    bodyLimit: config.bodyLimit,
    connectionTimeout: t.connectionMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    http: serverOptions,
    ...(deps.tls === undefined ? {} : { https: { ...serverOptions, key: deps.tls.key, cert: deps.tls.cert } }),
    trustProxy: config.trustProxy,
    // We answer 503 ourselves during shutdown, in our envelope (see the onRequest hook below).
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH, querystringParser: parseQueryString },
    frameworkErrors: createFrameworkErrorHandler(now, config.bodyLimit),
    clientErrorHandler: createClientErrorHandler(now, metrics),
  }) as unknown as FastifyInstance

  const auth = createAuth(store, now)

  app.decorateRequest('auth', null)
  app.decorateRequest('uploadOutcome', null)
  app.decorateRequest('dryRun', false)
  app.decorateRequest('failureMsg', null)
  // Route schemas document (OpenAPI); they never validate nor shape answers. The checks in src/core
  // decide what is accepted, and bodies are serialized as they are.
  app.setValidatorCompiler(() => (value: unknown) => ({ value }))
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data))
  registerErrorHandlers(app, now, config.bodyLimit)
  registerJsonBodyParser(app, config.bodyLimit)

  // Shutdown: new requests get a 503, responses in flight carry `Connection: close`, and sockets
  // with no request in progress (idle keep-alive, or connected and silent) are closed at once, so
  // close() waits only for requests in flight.
  let closing = false
  const sockets = new Set<Socket>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  }
  app.server.on(deps.tls === undefined ? 'connection' : 'secureConnection', track)
  app.addHook('preClose', (done) => {
    closing = true
    // Node sets `_httpMessage` on a socket while it carries a response in progress.
    for (const socket of sockets) if ((socket as { _httpMessage?: unknown })._httpMessage == null) socket.destroy()
    done()
  })
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      void reply.code(400).send(failure(now, 'Missing Host header: HTTP/1.1 requests must carry one'))
      return
    }
    if ((request.query as ParsedQuery)[MALFORMED_QUERY] === true) {
      void reply.code(400).send(failure(now, 'Malformed URL: invalid percent-encoding in the query string'))
      return
    }
    if (!closing) return done()
    void reply.code(503).header('connection', 'close').send(failure(now, 'Server is shutting down, retry shortly'))
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })

  answerExpectations(app, config.bodyLimit, now, metrics)

  const segmentIndex = config.segments
    ? new SegmentIndex(store, {
        idleMs: config.segmentIndexIdleMinutes * 60_000,
        memoryBudgetBytes: config.segmentIndexMemoryMb * 1024 * 1024,
        log: (message) => app.log.warn(message),
        ...(deps.indexBuildSource === undefined ? {} : { buildSource: deps.indexBuildSource }),
      })
    : undefined
  if (segmentIndex !== undefined) metrics.observeSegmentIndex(() => segmentIndex.stats())
  const requestLog = config.admin.requestLog
    ? new RequestLogWriter({
        store,
        now,
        log: app.log,
        maxPerProject: config.admin.requestLogMaxPerProject,
        days: config.admin.requestLogDays,
      })
    : undefined
  app.decorate('flushRequestLog', async () => requestLog?.flush())
  app.addHook('onClose', async () => {
    segmentIndex?.close()
    // Before the store closes (main.ts and the tests close the app first).
    await requestLog?.close()
  })

  // The OpenAPI document must see every route: it is registered first, and the routes inside one
  // unencapsulated plugin after it, so its onRoute hook is in place when they are declared.
  registerOpenApi(app)
  void app.register(
    fastifyPlugin(async (root: FastifyInstance) => {
      registerMetrics(root, metrics)
      registerHealthRoutes(root, store, now)
      registerConsoleRoutes(root, { now })
      // The /v1 API in one child context, so the rate limiter is loaded before its routes are declared.
      void root.register(async (api) => {
        if (requestLog !== undefined) registerRequestLogHooks(api, requestLog, now)
        await registerRateLimit(api, { perMinute: config.rateLimitPerMinute, redisUrl: config.redisUrl })
        registerProfileRoutes(api, { store, auth, metrics, now })
        if (segmentIndex !== undefined) {
          registerSegmentRoutes(api, { store, auth, now, index: segmentIndex })
          registerAttributeRoutes(api, { store, auth, now, index: segmentIndex })
        } else {
          registerSegmentsOff(api, now)
        }
      })
      registerAdminApi(root, {
        store,
        config,
        now,
        index: segmentIndex,
        ...(deps.loginLimits === undefined ? {} : { loginLimits: deps.loginLimits }),
      })
    }),
  )

  return app
}

/** With `SEGMENTS=off` the change log is not written, so no index could be exact: say so instead of a bare 404. */
function registerSegmentsOff(app: FastifyInstance, now: Clock): void {
  const off = async (_request: unknown, reply: FastifyReply) =>
    reply.code(404).send(failure(now, 'Segmentation is turned off on this server (SEGMENTS=off)'))
  for (const url of ['/v1/user/segments', '/v1/user/segments/*', '/v1/user/attributes']) app.all(url, off)
}

/**
 * `Expect` handling in our envelope. Node answers an unknown expectation with an empty 417 and
 * sends `100 Continue` for any body, even one over the limit; we refuse the unknown expectation
 * with a body, and an announced body over `bodyLimit` with a 413 before the client sends it.
 */
function answerExpectations(app: FastifyInstance, bodyLimit: number, now: Clock, metrics: Metrics): void {
  const refuse = (res: ServerResponse, status: number, msg: string): void => {
    const body = JSON.stringify(failure(now, msg))
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    })
    res.end(body)
    metrics.recordUnrouted(status)
  }
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    refuse(res, 417, `Unsupported Expect header "${String(req.headers.expect).slice(0, 40)}": only 100-continue is`)
  })
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const length = Number(req.headers['content-length'])
    if (Number.isFinite(length) && length > bodyLimit) {
      refuse(res, 413, `Request body is larger than the limit of ${bodyLimit} bytes`)
      return
    }
    res.writeContinue()
    app.server.emit('request', req, res)
  })
}
