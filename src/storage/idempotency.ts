import type { IdempotencyState } from './store.js'

/** What a held idempotency key means for a new request with `fingerprint`: shared by both stores. */
export function idempotencyState(
  row: { fingerprint: string; status: number | null; response: string | null },
  fingerprint: string,
): IdempotencyState {
  // Another body first (the draft's 422), even while the first request still runs.
  if (row.fingerprint !== fingerprint) return { kind: 'mismatch' }
  if (row.status === null || row.response === null) return { kind: 'in_flight' }
  return { kind: 'completed', status: row.status, body: row.response }
}
