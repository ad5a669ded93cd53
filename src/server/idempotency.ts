import { createHash } from 'node:crypto'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { TraitbaseError } from '../core/errors.js'
import type { Store } from '../storage/store.js'
import type { Clock } from './envelope.js'

/**
 * `Idempotency-Key` (IETF httpapi draft "The Idempotency-Key HTTP Header Field") on uploads: a key
 * and its first answer are kept this long; the same key with the same body replays that answer.
 */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

/**
 * A claim still in flight after this long belongs to a process that died between claiming and
 * answering: a retry with the same body may take it over. Well above any upload's run time (the
 * statement timeout bounds each database call), so a live request is never taken over.
 */
export const IDEMPOTENCY_ABANDONED_MS = 2 * 60 * 1000

/** How often a process deletes expired keys (every process does; deleting twice is harmless). */
export const IDEMPOTENCY_PRUNE_INTERVAL_MS = 10 * 60 * 1000

const MAX_KEY_LENGTH = 255
/** The draft's value is a Structured Field sf-string: printable ASCII in quotes, `\"` and `\\` escaped. */
const SF_STRING = /^"((?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\])*)"$/
/** Also accepted: a bare token as most clients (and Stripe-style APIs) send it, no spaces or quotes. */
const BARE = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/**
 * The request's idempotency key, undefined without the header. A malformed or repeated header is a
 * 400: silently ignoring it would turn a retry into a second write.
 */
export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key']
  if (raw === undefined) return undefined
  let count = 0
  const headers = request.raw.rawHeaders
  for (let i = 0; i < headers.length; i += 2) if ((headers[i] as string).toLowerCase() === 'idempotency-key') count++
  if (count > 1 || Array.isArray(raw)) throw new TraitbaseError('BAD_REQUEST', 'Send one Idempotency-Key header')
  const value = raw.trim()
  const quoted = SF_STRING.exec(value)
  const key = quoted !== null ? (quoted[1] as string).replace(/\\(["\\])/g, '$1') : BARE.test(value) ? value : ''
  if (key === '' || key.length > MAX_KEY_LENGTH) {
    throw new TraitbaseError(
      'BAD_REQUEST',
      `Malformed Idempotency-Key: 1 to ${MAX_KEY_LENGTH} printable ASCII characters, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324"`,
    )
  }
  return key
}

/** Digest of the parsed body: a retry re-serialized with other whitespace is still the same request. */
export function fingerprintOf(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('base64url')
}

export interface IdempotentRun {
  readonly store: Store
  readonly now: Clock
  readonly projectId: number
  readonly key: string
  readonly body: unknown
}

/**
 * Runs `work` (which answers 200 with `text`) at most once per key and body: a replay sends the first
 * answer with `Idempotent-Replayed: true`; another body is a 422, a key still in flight a 409 with
 * `Retry-After`. Only successes are kept: a failed request frees its key, so its retry runs again
 * (the draft leaves error caching to the server; a 503 must stay retryable).
 */
export async function runIdempotent(
  run: IdempotentRun,
  request: FastifyRequest,
  reply: FastifyReply,
  work: () => Promise<string>,
): Promise<FastifyReply> {
  const { store, projectId, key } = run
  const at = run.now()
  const state = await store.claimIdempotencyKey({
    projectId,
    key,
    fingerprint: fingerprintOf(run.body),
    now: new Date(at),
    expiredBefore: new Date(at - IDEMPOTENCY_TTL_MS),
    abandonedBefore: new Date(at - IDEMPOTENCY_ABANDONED_MS),
  })
  if (state.kind === 'completed') {
    return reply
      .code(state.status)
      .header('idempotent-replayed', 'true')
      .type('application/json; charset=utf-8')
      .send(state.body)
  }
  if (state.kind === 'mismatch') {
    throw new TraitbaseError(
      'IDEMPOTENCY_KEY_REUSED',
      'This Idempotency-Key was already used with another request body: use a new key for a new request',
    )
  }
  if (state.kind === 'in_flight') {
    reply.header('retry-after', '1')
    throw new TraitbaseError('CONFLICT', 'A request with this Idempotency-Key is still being processed; retry shortly')
  }
  let text: string
  try {
    text = await work()
  } catch (error) {
    await store.releaseIdempotencyKey(projectId, key).catch((releaseError: unknown) => {
      // The claim then expires as abandoned; retries get 409 until then.
      request.log.warn({ err: releaseError }, 'could not release an idempotency key')
    })
    throw error
  }
  try {
    await store.completeIdempotencyKey(projectId, key, 200, text)
  } catch (error) {
    // The upload is committed: answer it. A retry sees the claim in flight (409) until it counts as
    // abandoned, then runs again — uploads are idempotent in effect, so that only repeats a write.
    request.log.warn({ err: error }, 'could not record an idempotent answer')
  }
  return reply.type('application/json; charset=utf-8').send(text)
}

/** Deletes expired keys every {@link IDEMPOTENCY_PRUNE_INTERVAL_MS}; returns the stop function. */
export function startIdempotencyPruning(store: Store, now: Clock, log: FastifyBaseLogger): () => void {
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    store
      .pruneIdempotencyKeys(new Date(now() - IDEMPOTENCY_TTL_MS))
      .catch((error: unknown) => log.warn({ err: error }, 'could not prune expired idempotency keys'))
      .finally(() => (running = false))
  }, IDEMPOTENCY_PRUNE_INTERVAL_MS)
  timer.unref()
  return () => clearInterval(timer)
}
