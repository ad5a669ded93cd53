import { TraitbaseApiError } from './api-error.js'
import type { AttributeValue } from './batch.js'
import { isRetryableStatus, parseRetryAfter, resolveRetryOptions, retryDelay, type RetryOptions } from './retry.js'
import { uploadProfiles, type UploadOptions, type UploadSummary } from './upload-profiles.js'

/** How to reach a server that speaks the User Attribute Upload API. */
export interface ClientOptions {
  /** Where the API lives, e.g. `http://127.0.0.1:8080` (paths such as `/v1/user/profiles` are appended). */
  readonly baseUrl: string
  /** A project API key, sent as `Authorization: Bearer <key>`. */
  readonly apiKey: string
  /**
   * The fetch to use, e.g. one with a proxy agent or a test double.
   * @default globalThis.fetch (Node's built-in fetch keeps connections alive)
   */
  readonly fetch?: typeof globalThis.fetch
  /**
   * Per attempt: time allowed for the whole response; a timed-out attempt is retried.
   * @default 30000
   */
  readonly timeoutMs?: number
  /** Retry policy; see {@link RetryOptions} for its defaults. */
  readonly retry?: RetryOptions
  /**
   * Upload requests in flight at once. The server's write path is the limit; a few suffice.
   * @default 4
   */
  readonly concurrency?: number
}

/** A stored profile, as `GET /v1/user/profiles/{user_id}` returns it. */
export interface ProfileData {
  readonly user_id: string
  readonly attributes: Readonly<Record<string, string>>
  /** ISO-8601. */
  readonly created_at: string
  readonly updated_at: string
}

/** A segment condition, as `POST /v1/user/segments/query` takes it. */
export type SegmentWhere =
  | { readonly all: readonly SegmentWhere[] }
  | { readonly any: readonly SegmentWhere[] }
  | { readonly not: SegmentWhere }
  | { readonly field: string; readonly op: 'eq' | 'neq' | 'contains' | 'starts_with'; readonly value: string }
  | { readonly field: string; readonly op: 'in' | 'not_in'; readonly value: readonly string[] }
  | { readonly field: string; readonly op: 'gt' | 'gte' | 'lt' | 'lte'; readonly value: number }
  | { readonly field: string; readonly op: 'exists' | 'not_exists' }

/** One page of a segment query. `count` is the number of matching users overall. */
export interface SegmentPage {
  readonly count: number
  readonly user_ids: readonly string[]
  readonly next_cursor: string | null
}

export interface TraitbaseClient {
  /**
   * Uploads any number of `{ user_id, ...attributes }` rows (an array, iterable or async iterable,
   * read lazily: memory stays flat). Resolves with a summary naming every row that did not land;
   * never rejects.
   */
  uploadProfiles(rows: Iterable<unknown> | AsyncIterable<unknown>, options?: UploadOptions): Promise<UploadSummary>
  /** Sends one request as is (≤ 100 rows, ≤ 50 fields), with retries. Throws {@link TraitbaseApiError}. */
  postProfiles(fieldNames: readonly string[], values: readonly (readonly AttributeValue[])[]): Promise<void>
  /** The profile, or null when the server answers 404 (no such user in this project). */
  getProfile(userId: string): Promise<ProfileData | null>
  /** True when the user existed and was erased, false on 404. */
  deleteProfile(userId: string): Promise<boolean>
  /** Every page of the users matching `where`, following `next_cursor` to the end. */
  querySegment(where: SegmentWhere, options?: { readonly limit?: number }): AsyncIterable<SegmentPage>
}

const PROFILES_PATH = '/v1/user/profiles'

/** Creates a client. Throws a TypeError at once for an unusable `baseUrl`. */
export function createClient(options: ClientOptions): TraitbaseClient {
  let base: URL
  try {
    base = new URL(options.baseUrl)
  } catch {
    throw new TypeError(`baseUrl is not a valid URL: ${JSON.stringify(options.baseUrl)}`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`baseUrl must be http:// or https://, got ${JSON.stringify(options.baseUrl)}`)
  }
  if (base.search !== '' || base.hash !== '') {
    throw new TypeError(`baseUrl must not have a query or a fragment, got ${JSON.stringify(options.baseUrl)}`)
  }
  if (typeof options.apiKey !== 'string' || !/^[\x21-\x7e]+$/.test(options.apiKey)) {
    // Never echo the key: it is a secret.
    throw new TypeError('apiKey must be a non-empty string of printable ASCII characters (no spaces)')
  }
  const root = base.href.replace(/\/+$/, '')
  const fetchImpl = options.fetch ?? globalThis.fetch
  const timeoutMs = options.timeoutMs ?? 30_000
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw new RangeError('timeoutMs must be a number of milliseconds > 0 (at most 2147483647)')
  }
  const retry = resolveRetryOptions(options.retry)
  const concurrency = options.concurrency ?? 4
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be an integer ≥ 1')
  const headers = { authorization: `Bearer ${options.apiKey}`, accept: 'application/json' }

  /** One call with retries; resolves with the parsed body and status of the final answer, 2xx or `acceptStatus`. */
  async function call(
    method: string,
    path: string,
    body: unknown,
    acceptStatus: number | undefined,
    onRetry?: () => void,
    idempotencyKey?: string,
  ): Promise<{ status: number; json: unknown }> {
    const sent: Record<string, string> =
      body === undefined ? headers : { ...headers, 'content-type': 'application/json' }
    const init: RequestInit = {
      method,
      // One key for every attempt of this request (an sf-string, as the IETF draft writes it).
      headers: idempotencyKey === undefined ? sent : { ...sent, 'idempotency-key': `"${idempotencyKey}"` },
      body: body === undefined ? undefined : JSON.stringify(body),
    }
    for (let attempt = 1; ; attempt++) {
      let failure: TraitbaseApiError
      let retryAfterMs: number | undefined
      try {
        const res = await fetchImpl(root + path, { ...init, signal: AbortSignal.timeout(timeoutMs) })
        const text = await res.text()
        if (res.ok || res.status === acceptStatus) return { status: res.status, json: parseJson(text) }
        failure = new TraitbaseApiError({
          method,
          path,
          status: res.status,
          msg: readMsg(text) ?? (res.statusText || 'no message'),
          // 409 to a keyed request: our own earlier attempt is still running on the server; wait for it.
          retryable: isRetryableStatus(res.status) || (idempotencyKey !== undefined && res.status === 409),
        })
        retryAfterMs = parseRetryAfter(res.headers.get('retry-after'))
      } catch (cause) {
        const timedOut = cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError')
        failure = new TraitbaseApiError({
          method,
          path,
          status: null,
          msg: timedOut ? `no response within ${timeoutMs} ms` : `network error: ${describeNetworkError(cause)}`,
          retryable: true,
          cause,
        })
      }
      if (!failure.retryable || attempt >= retry.maxAttempts) throw failure
      if (retryAfterMs !== undefined && retryAfterMs > retry.maxRetryAfterMs) throw failure
      onRetry?.()
      await sleep(retryDelay(attempt, retry, retryAfterMs))
    }
  }

  async function postProfiles(
    fieldNames: readonly string[],
    values: readonly (readonly AttributeValue[])[],
    onRetry?: () => void,
  ): Promise<void> {
    // Retrying this POST is safe: every attempt carries the same Idempotency-Key, so a server that
    // supports it applies the batch once and replays its answer; one that does not still ends in the
    // same state (an upload is idempotent in effect). A new request (e.g. half a refused batch) gets a new key.
    await call(
      'POST',
      PROFILES_PATH,
      { field_name: fieldNames, values },
      undefined,
      onRetry,
      globalThis.crypto.randomUUID(),
    )
  }

  return {
    uploadProfiles: (rows, uploadOptions) =>
      uploadProfiles(rows, { concurrency, send: (f, v, onRetry) => postProfiles(f, v, onRetry) }, uploadOptions),
    postProfiles: (fieldNames, values) => postProfiles(fieldNames, values),
    async getProfile(userId) {
      const { status, json } = await call('GET', profilePath(userId), undefined, 404)
      if (status === 404) return noSuchUser('GET', json)
      return readData(json) as ProfileData
    },
    async deleteProfile(userId) {
      const { status, json } = await call('DELETE', profilePath(userId), undefined, 404)
      if (status !== 404) return true
      noSuchUser('DELETE', json)
      return false
    },
    querySegment(where, queryOptions) {
      return {
        async *[Symbol.asyncIterator]() {
          let cursor: string | undefined
          do {
            const body = { where, limit: queryOptions?.limit, cursor }
            const { json } = await call('POST', '/v1/user/segments/query', body, undefined)
            const page = readData(json) as SegmentPage
            yield page
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
        },
      }
    },
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function readMsg(text: string): string | undefined {
  const json = parseJson(text)
  if (typeof json === 'object' && json !== null && typeof (json as { msg?: unknown }).msg === 'string') {
    return (json as { msg: string }).msg
  }
  // Not our envelope (a proxy's error page, say): a short excerpt helps more than nothing.
  const excerpt = text.replace(/\s+/g, ' ').trim().slice(0, 200)
  return excerpt === '' ? undefined : excerpt
}

function readData(json: unknown): unknown {
  return typeof json === 'object' && json !== null ? (json as { data?: unknown }).data : undefined
}

function describeNetworkError(cause: unknown): string {
  // Node's fetch says "fetch failed" and puts the useful part (ECONNRESET, ECONNREFUSED…) in `cause`.
  const inner = cause instanceof Error && cause.cause instanceof Error ? cause.cause : cause
  if (inner instanceof Error) {
    const code = (inner as { code?: unknown }).code
    return typeof code === 'string' && !inner.message.includes(code) ? `${code} ${inner.message}` : inner.message
  }
  return String(inner)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A 404 from a profile path means "no such user", unless the server says it has no such route:
 * then `baseUrl` is wrong, and answering "no such user" would hide it.
 */
function noSuchUser(method: string, json: unknown): null {
  const msg = typeof json === 'object' && json !== null ? (json as { msg?: unknown }).msg : undefined
  if (typeof msg === 'string' && /no route/i.test(msg)) {
    throw new TraitbaseApiError({
      method,
      path: PROFILES_PATH,
      status: 404,
      msg: `${msg} (is baseUrl right?)`,
      retryable: false,
    })
  }
  return null
}

/**
 * The path of one profile. `.` and `..` go in the query string: every URL parser resolves them as
 * dot segments (even percent-encoded), so no path can carry them.
 */
function profilePath(userId: string): string {
  if (typeof userId !== 'string' || userId === '') throw new TypeError('userId must be a non-empty string')
  return userId === '.' || userId === '..'
    ? `${PROFILES_PATH}?user_id=${encodeURIComponent(userId)}`
    : `${PROFILES_PATH}/${encodeURIComponent(userId)}`
}
