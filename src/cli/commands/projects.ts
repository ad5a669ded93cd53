import { TraitbaseError } from '../../core/errors.js'
import type { Store } from '../../storage/store.js'
import type { Output } from '../output.js'

export interface SetRateLimitOptions {
  readonly store: Store
  readonly out: Output
  readonly project: string
  /** Requests per minute per key, `0` for none, or `default` for the server's `RATE_LIMIT`. */
  readonly limit: string
}

/**
 * Stores a project's own rate limit (requests per minute, per key). Every server process reads it
 * with the key on each request, so it applies from the next request on, without a restart.
 */
export async function setRateLimit({ store, out, project, limit }: SetRateLimitOptions): Promise<number | null> {
  const raw = limit.trim().toLowerCase()
  let perMinute: number | null
  if (raw === 'default') perMinute = null
  else if (/^\d+$/.test(raw) && Number(raw) <= 10_000_000) perMinute = Number(raw)
  else {
    throw new TraitbaseError(
      'BAD_REQUEST',
      `LIMIT must be requests per minute per key (0 to 10000000; 0 = unlimited) or "default", got "${limit}"`,
    )
  }
  const result = await store.setProjectRateLimit(project, perMinute)
  if (result === undefined) throw new TraitbaseError('NOT_FOUND', `No project named "${project}"`)
  out.out(
    perMinute === null
      ? `Project "${project}": rate limit back to the server's RATE_LIMIT.`
      : perMinute === 0
        ? `Project "${project}": no rate limit for its keys.`
        : `Project "${project}": ${perMinute} requests per minute per key.`,
  )
  return perMinute
}
