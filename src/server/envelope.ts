import type { Issue } from '../core/result.js'

/** A clock in milliseconds since the epoch; injected so tests can fix `timestamp`. */
export type Clock = () => number

/** The spec's response body (§7): `msg` and a Unix timestamp in seconds, plus `data` on reads. */
export interface Envelope<T = undefined> {
  readonly msg: string
  readonly timestamp: number
  readonly data?: T
  /** Every validation problem, on 400s only; `msg` repeats the first. */
  readonly errors?: readonly Issue[]
}

export function unixSeconds(now: Clock): number {
  return Math.floor(now() / 1000)
}

/** `{"msg":"Success","timestamp":N}` plus `data` when given. */
export function success<T>(now: Clock, data?: T): Envelope<T> {
  return data === undefined
    ? { msg: 'Success', timestamp: unixSeconds(now) }
    : { msg: 'Success', timestamp: unixSeconds(now), data }
}

/** The failure body (spec §7); `errors` only when there are issues to list. */
export function failure(now: Clock, msg: string, errors?: readonly Issue[]): Envelope {
  return errors === undefined || errors.length === 0
    ? { msg, timestamp: unixSeconds(now) }
    : { msg, timestamp: unixSeconds(now), errors }
}

/**
 * The upload answer as ready-made JSON text: it is the hot path's whole response, so it skips the
 * serializer. Same bytes as `JSON.stringify(success(now))`.
 */
export function successText(now: Clock): string {
  return `{"msg":"Success","timestamp":${unixSeconds(now)}}`
}
