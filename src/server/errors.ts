import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { ERROR_STATUS, TraitbaseError, type ErrorCode } from '../core/errors.js'
import { isStoreUnavailable } from '../storage/unavailable.js'
import { failure, type Clock } from './envelope.js'
import { ANSWERED_STATUS, type Metrics } from './metrics.js'

/**
 * Fastify's own errors a client can cause, and what we answer instead. The one place framework
 * errors become our envelope; anything not listed with a 4xx status keeps its status as BAD_REQUEST.
 */
const FASTIFY_ERRORS: Readonly<Record<string, { code: ErrorCode; msg: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', msg: 'Request body is larger than the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    msg: 'Unsupported Content-Type: send the body as application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'BAD_REQUEST',
    msg: 'Request body length does not match the Content-Length header',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', msg: 'Request body is empty: expected a JSON object' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', msg: 'Request body is not valid JSON' },
  FST_ERR_BAD_URL: { code: 'BAD_REQUEST', msg: 'Malformed URL: invalid percent-encoding' },
  // A path parameter longer than any valid id cannot name anything that exists.
  FST_ERR_MAX_PARAM_LENGTH: { code: 'NOT_FOUND', msg: 'Not found: a path parameter is longer than any valid id' },
}

function codeOf(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

const CLIENT_STATUSES = new Set<number>(Object.values(ERROR_STATUS).filter((s) => s < 500))

/** Turns any thrown value into a status and a message safe to show; 5xx details stay in the log. */
export function describeError(error: unknown, bodyLimit: number): { status: number; msg: string; te?: TraitbaseError } {
  if (error instanceof TraitbaseError) {
    if (error.status >= 500) return { status: error.status, msg: hiddenMessage(error.status) }
    return { status: error.status, msg: error.message, te: error }
  }
  // The database is down, unreachable or locked: the client's request is fine, and may be retried.
  if (isStoreUnavailable(error)) return { status: 503, msg: hiddenMessage(503) }
  const known = FASTIFY_ERRORS[codeOf(error) ?? '']
  if (known !== undefined) {
    const msg = known.code === 'PAYLOAD_TOO_LARGE' ? `${known.msg} of ${bodyLimit} bytes` : known.msg
    return { status: ERROR_STATUS[known.code], msg }
  }
  // Client faults Fastify or Node flag with a 4xx of their own (an aborted upload, a new framework check).
  const status = error instanceof Error ? (error as { statusCode?: unknown }).statusCode : undefined
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const kept = CLIENT_STATUSES.has(status) ? status : 400
    return { status: kept, msg: STATUS_CODES[kept] ?? 'Bad Request' }
  }
  return { status: 500, msg: hiddenMessage(500) }
}

function hiddenMessage(status: number): string {
  return status === 503 ? 'Service unavailable, try again later' : 'Internal server error'
}

/** The log line of a response the client did not wait for (an export it stopped reading, say). */
export const CLIENT_GONE = 'client closed the connection before the response was complete'

/** A stream error that only means the client went away: nothing of ours failed. */
export function isClientGone(error: unknown): boolean {
  const code = codeOf(error)
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE'
}

/** Registers the error, not-found and framework-error handlers that give every failure the `{msg, timestamp}` body. */
export function registerErrorHandlers(app: FastifyInstance, now: Clock, bodyLimit: number): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    // (`request.raw.destroyed` is no sign: a request stream is destroyed once its body is read.)
    const gone = reply.raw.destroyed || request.raw.socket?.destroyed === true
    if (reply.raw.headersSent || gone) {
      // Nobody to answer (or the answer has begun): an error body now would only corrupt the stream.
      if (gone || isClientGone(error)) request.log.info(CLIENT_GONE)
      else request.log.error({ err: error }, 'response failed after it began')
      reply.hijack()
      reply.raw.destroy()
      return
    }
    const { status, msg, te } = describeError(error, bodyLimit)
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
    } else if (te === undefined && status === 400) {
      request.log.info({ code: (error as { code?: unknown }).code }, 'bad request')
    }
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="traitbase"')
    if (status === 503) reply.header('retry-after', '1')
    const errors = status === 400 && te?.issues !== undefined ? te.issues : undefined
    return reply.code(status).send(failure(now, msg, errors))
  })
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(failure(now, `Not found: no route for ${request.method} ${pathOf(request.url)}`))
  })
}

/** Only the path, and cut short: the query string or a long user id has no place in an error message. */
function pathOf(url: string): string {
  const path = url.split('?', 1)[0] ?? ''
  return path.length > 200 ? `${path.slice(0, 200)}…` : path
}

/** Fastify's `frameworkErrors` option: bad percent-encoding and over-long params, answered in our envelope. */
export function createFrameworkErrorHandler(now: Clock, bodyLimit: number) {
  return (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void => {
    const { status, msg } = describeError(error, bodyLimit)
    void reply.code(status).send(failure(now, msg))
  }
}

/**
 * Fastify's `clientErrorHandler` option: the HTTP parser refused the bytes (malformed request line,
 * conflicting Content-Length, header overflow) or a client took too long. We answer in our envelope
 * when the socket still takes writes, then drop the connection.
 */
export function createClientErrorHandler(now: Clock, metrics?: Metrics) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const [code, msg]: [ErrorCode, string] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['REQUEST_TIMEOUT', 'Request timed out: headers and body must arrive in time']
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? ['HEADERS_TOO_LARGE', 'Request headers are too large']
          : ['BAD_REQUEST', 'Malformed HTTP request']
    const status = ERROR_STATUS[code]
    // A request in progress is counted when its response closes; anything else never reached a route.
    ;(socket as Socket & { [ANSWERED_STATUS]?: number })[ANSWERED_STATUS] = status
    if ((socket as { _httpMessage?: unknown })._httpMessage == null) metrics?.recordUnrouted(status)
    const body = JSON.stringify(failure(now, msg))
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
    }
    socket.destroy()
  }
}

const ALL_METHODS: readonly HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']

/**
 * Declares the 405 for every method a known path does not serve, with `Allow`, instead of Fastify's
 * 404. `HEAD` counts as served when `GET` is (Fastify adds HEAD routes for GET ones).
 */
export function addMethodNotAllowed(
  app: FastifyInstance,
  now: Clock,
  url: string,
  allowed: readonly HTTPMethods[],
): void {
  const served = new Set<HTTPMethods>(allowed)
  if (served.has('GET')) served.add('HEAD')
  const allow = ALL_METHODS.filter((m) => served.has(m)).join(', ')
  const refused = ALL_METHODS.filter((m) => !served.has(m))
  const refuse = (request: FastifyRequest, reply: FastifyReply): FastifyReply =>
    reply
      .code(405)
      .header('allow', allow)
      .send(failure(now, `Method ${request.method} is not allowed on this path; allowed: ${allow}`))
  // Answered in onRequest, before any body is read: a PUT with a huge or non-JSON body is still a 405.
  app.route({
    method: refused as HTTPMethods[],
    url,
    onRequest: async (request, reply) => refuse(request, reply),
    handler: refuse,
  })
}
