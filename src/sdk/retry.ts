/**
 * Retry policy, pure: which failures are worth another attempt and how long to wait first.
 *
 * Unlike most fetch clients, which never retry a POST, traitbase retries uploads: an upload is
 * idempotent (the same batch always leaves the same state, spec §4 update policy), so sending it
 * twice is harmless.
 */

/** How the client retries. */
export interface RetryOptions {
  /**
   * Attempts per request, the first one included; 1 disables retries. With the default delays the
   * retries of one request spread over about a minute on average, enough to ride out a server restart.
   * @default 10
   */
  readonly maxAttempts?: number
  /**
   * Ceiling of the first backoff; each further attempt doubles it (full jitter: the wait is uniform in [0, ceiling]).
   * @default 500
   */
  readonly baseDelayMs?: number
  /**
   * Largest backoff ceiling.
   * @default 30000
   */
  readonly maxDelayMs?: number
  /**
   * Longest `Retry-After` honoured; a server asking for more makes the request fail instead of stalling for hours.
   * @default 300000
   */
  readonly maxRetryAfterMs?: number
}

export type ResolvedRetryOptions = Required<RetryOptions>

export function resolveRetryOptions(options: RetryOptions | undefined): ResolvedRetryOptions {
  const o = {
    maxAttempts: options?.maxAttempts ?? 10,
    baseDelayMs: options?.baseDelayMs ?? 500,
    maxDelayMs: options?.maxDelayMs ?? 30_000,
    maxRetryAfterMs: options?.maxRetryAfterMs ?? 300_000,
  }
  if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1)
    throw new RangeError('retry.maxAttempts must be an integer ≥ 1')
  for (const k of ['baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0) throw new RangeError(`retry.${k} must be a number ≥ 0`)
  }
  return Object.freeze(o)
}

/**
 * True for statuses where the same request may succeed later: 408 Request Timeout, 425 Too Early,
 * 429 Too Many Requests (RFC 9110 §15.5.9, RFC 8470 §5.2, RFC 6585 §4) and every 5xx. Any other
 * 4xx is the client's mistake and would fail again.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599)
}

/**
 * Reads `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date. Returns milliseconds to
 * wait (0 for a date in the past), or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  if (v === '' || /^[+-]?\d/.test(v)) return undefined
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - now)
}

/**
 * Milliseconds to wait before attempt `attempt + 1`, after `attempt` (≥ 1) failed: exponential
 * backoff with full jitter, so many clients that failed together do not retry together; never less
 * than the server's `Retry-After`.
 */
export function retryDelay(
  attempt: number,
  options: ResolvedRetryOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, attempt - 1))
  const backoff = Math.floor(random() * ceiling)
  return retryAfterMs === undefined ? backoff : Math.max(retryAfterMs, backoff)
}
