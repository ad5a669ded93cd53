/**
 * The upload loop behind `client.uploadProfiles`: pulls rows, packs them (`batch.ts`), sends
 * batches with bounded concurrency and accounts for every row. It never rejects: whatever goes
 * wrong ends up in the summary.
 */
import { TraitbaseApiError } from './api-error.js'
import { BatchPacker, splitRecord, type AttributeValue, type PackedBatch } from './batch.js'

/** A row that did not land, by its position in the input (0-based). */
export interface RowReport {
  readonly index: number
  /** Undefined when the row had no usable `user_id`. */
  readonly user_id: string | undefined
  readonly reason: string
}

/** Counters so far; also the shape of the final summary's counters. */
export interface UploadProgress {
  /** Rows taken from the input. */
  readonly read: number
  /** Rows fully stored (every chunk of a wide row acknowledged). */
  readonly sent: number
  /** Rows refused for their content (validation here, or a 400 from the server for that row). */
  readonly rejected: number
  /** Rows not stored because of the server or the network (retries exhausted, 401, 403, aborted). */
  readonly failed: number
  /** HTTP requests that got a final answer (retries not counted). */
  readonly requests: number
  /** Extra attempts after a retryable failure. */
  readonly retries: number
}

export interface UploadSummary extends UploadProgress {
  readonly rejectedRows: readonly RowReport[]
  readonly failedRows: readonly RowReport[]
  /** Why the upload stopped before the end of the input, or null when it read everything. */
  readonly aborted: { readonly reason: string; readonly error: unknown } | null
}

export interface UploadOptions {
  /** Called after every request and every rejected row; keep it cheap. */
  readonly onProgress?: (progress: UploadProgress) => void
  /**
   * Called with `n` whenever it grows: every row with index < n is stored or rejected (and its
   * `onReject` already called), so a resumed upload may start at row n without losing anything.
   */
  readonly onCheckpoint?: (settledRows: number) => void
  /** Called once per rejected row, with the input record, before the checkpoint moves past it. */
  readonly onReject?: (row: RowReport, record: unknown) => void
  /**
   * Keep `rejectedRows` and `failedRows` in the summary. Turn off for huge inputs and use `onReject`.
   * @default true
   */
  readonly keepRowReports?: boolean
  /**
   * Hold every record until its row is settled, so `onReject` gets it for rows the server refuses.
   * Turn off to save memory when you track rows by index yourself (`onReject` then gets `undefined` for those).
   * @default true
   */
  readonly keepRecords?: boolean
  /** Stops reading the input when aborted; requests already sent finish and are accounted for. */
  readonly signal?: AbortSignal
}

/** What the loop needs from the client: send one request (with its own retries) or throw a TraitbaseApiError. */
export interface UploadTransport {
  readonly concurrency: number
  send(
    fieldNames: readonly string[],
    values: readonly (readonly AttributeValue[])[],
    onRetry: () => void,
  ): Promise<void>
}

interface RowState {
  left: number
  readonly userId: string
  readonly record: unknown
  rejected?: string
  failed?: string
}

/** How often an idle network flushes partly filled batches while the input is slow. */
const IDLE_FLUSH_MS = 50

export async function uploadProfiles(
  rows: Iterable<unknown> | AsyncIterable<unknown>,
  transport: UploadTransport,
  options: UploadOptions = {},
): Promise<UploadSummary> {
  const keepReports = options.keepRowReports ?? true
  const keepRecords = options.keepRecords ?? true
  const packer = new BatchPacker()
  const live = new Map<number, RowState>()
  const rejectedRows: RowReport[] = []
  const failedRows: RowReport[] = []
  let read = 0
  let sent = 0
  let rejected = 0
  let failed = 0
  let requests = 0
  let retries = 0
  let inFlight = 0
  let settledPrefix = 0
  let aborted: { reason: string; error: unknown } | null = null
  let wake: (() => void) | undefined

  const notify = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const changed = (): Promise<void> => new Promise((resolve) => (wake = resolve))
  const abort = (reason: string, error: unknown): void => {
    aborted ??= { reason, error }
    notify()
  }
  // A throwing callback must not escape into a timer or a promise chain; it stops the upload instead.
  const callback = <A extends unknown[]>(fn: ((...args: A) => void) | undefined, ...args: A): void => {
    if (fn === undefined) return
    try {
      fn(...args)
    } catch (error) {
      abort(`a callback threw: ${error instanceof Error ? error.message : String(error)}`, error)
    }
  }
  // A function, so TypeScript does not narrow `signal.aborted` across awaits.
  const stopped = (): boolean => aborted !== null || options.signal?.aborted === true
  const progress = (): UploadProgress => ({ read, sent, rejected, failed, requests, retries })

  const advance = (): void => {
    const before = settledPrefix
    while (settledPrefix < read && !live.has(settledPrefix)) settledPrefix++
    if (settledPrefix !== before) callback(options.onCheckpoint, settledPrefix)
  }

  const reject = (index: number, userId: string | undefined, reason: string, record: unknown): void => {
    rejected++
    const report = { index, user_id: userId, reason }
    if (keepReports) rejectedRows.push(report)
    callback(options.onReject, report, record)
  }

  const settleChunk = (index: number, outcome: { rejected?: string; failed?: string }): void => {
    const row = live.get(index)
    if (row === undefined) return
    row.left--
    if (outcome.rejected !== undefined) row.rejected ??= outcome.rejected
    if (outcome.failed !== undefined) row.failed ??= outcome.failed
    if (row.left > 0) return
    if (row.failed !== undefined) {
      // Stays in `live` so the checkpoint never moves past a row that did not land.
      failed++
      if (keepReports) failedRows.push({ index, user_id: row.userId, reason: row.failed })
      return
    }
    live.delete(index)
    if (row.rejected !== undefined) reject(index, row.userId, row.rejected, row.record)
    else sent++
  }

  const sendRows = async (
    fieldNames: readonly string[],
    values: readonly (readonly AttributeValue[])[],
    indexes: readonly number[],
  ): Promise<void> => {
    try {
      await transport.send(fieldNames, values, () => {
        retries++
      })
      requests++
      for (const i of indexes) settleChunk(i, {})
    } catch (caught) {
      requests++
      const error = caught instanceof TraitbaseApiError ? caught : undefined
      const status = error?.status ?? null
      if (status === 400 || status === 413 || status === 422) {
        // The server refused the content. Halve until the offending rows are alone, so one bad row
        // does not take 99 good ones with it (we validate first, so this is rare: a stricter server).
        if (values.length > 1) {
          const mid = Math.ceil(values.length / 2)
          await sendRows(fieldNames, values.slice(0, mid), indexes.slice(0, mid))
          await sendRows(fieldNames, values.slice(mid), indexes.slice(mid))
          return
        }
        for (const i of indexes) settleChunk(i, { rejected: error?.msg ?? String(caught) })
        return
      }
      const reason = caught instanceof Error ? caught.message : String(caught)
      for (const i of indexes) settleChunk(i, { failed: reason })
      abort(reason, caught)
    }
  }

  const pump = (): void => {
    while (aborted === null && inFlight < transport.concurrency) {
      const batch = packer.takeReady()
      if (batch === undefined) return
      inFlight++
      void sendRows(batch.fieldNames, batch.values, batch.rowIndexes)
        .catch((error: unknown) => abort(`internal error: ${String(error)}`, error))
        .finally(() => {
          inFlight--
          packer.complete(batch)
          advance()
          callback(options.onProgress, progress())
          pump()
          notify()
        })
    }
  }

  const idleTimer = setInterval(() => {
    if (inFlight === 0 && packer.sealedCount === 0 && packer.openCount > 0) {
      packer.flush()
      pump()
    }
  }, IDLE_FLUSH_MS)
  idleTimer.unref?.()
  const onAbortSignal = (): void => notify()
  options.signal?.addEventListener('abort', onAbortSignal)

  let iterator: Iterator<unknown> | AsyncIterator<unknown> | undefined
  let inputDone = false
  try {
    iterator = openIterator(rows)
    while (!stopped()) {
      while (packer.sealedCount >= transport.concurrency && !stopped()) await changed()
      if (stopped()) break
      const next = await iterator.next()
      if (next.done === true) {
        inputDone = true
        break
      }
      const index = read++
      const split = splitRecord(next.value)
      if (!split.ok) {
        reject(index, split.userId, split.reason, next.value)
        callback(options.onProgress, progress())
      } else {
        live.set(index, {
          left: split.chunks.length,
          userId: split.userId,
          record: keepRecords ? next.value : undefined,
        })
        for (const chunk of split.chunks) packer.add(index, chunk)
        pump()
      }
      advance()
    }
  } catch (error) {
    abort(`reading the input failed: ${error instanceof Error ? error.message : String(error)}`, error)
  }
  if (!inputDone && iterator?.return !== undefined) {
    try {
      await iterator.return()
    } catch {
      // Closing an input we stop reading early is best effort; its error is not the upload's.
    }
  }
  if (aborted === null && options.signal?.aborted === true) {
    abort('stopped by the caller', options.signal.reason)
  }

  packer.flush()
  pump()
  while (inFlight > 0) await changed()
  clearInterval(idleTimer)
  options.signal?.removeEventListener('abort', onAbortSignal)

  // Whatever was never sent (after an abort) fails with the reason, so no row goes unreported.
  const abortReason: string = (aborted as { reason: string } | null)?.reason ?? 'not sent'
  for (const batch of packer.drain()) {
    for (const i of batch.rowIndexes) settleChunk(i, { failed: `not sent: ${abortReason}` })
  }
  advance()
  callback(options.onProgress, progress())

  return { ...progress(), rejectedRows, failedRows, aborted }
}

function openIterator(rows: Iterable<unknown> | AsyncIterable<unknown>): Iterator<unknown> | AsyncIterator<unknown> {
  const asyncIt = (rows as AsyncIterable<unknown>)[Symbol.asyncIterator]
  if (typeof asyncIt === 'function') return asyncIt.call(rows)
  const syncIt = (rows as Iterable<unknown>)[Symbol.iterator]
  if (typeof syncIt === 'function') return syncIt.call(rows)
  throw new TypeError('rows must be an array, an iterable or an async iterable')
}

export type { PackedBatch }
