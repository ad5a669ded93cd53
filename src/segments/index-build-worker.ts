import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { ProjectNotIndexedError, type Store } from '../storage/store.js'
import type { BuildMessage, BuildRequest, FeedSource } from './index-builder.js'
import { ProjectIndex } from './project-index.js'
import { TransferList } from './transfer.js'

/** The part of a store the build reads: the change feed. */
type FeedReader = Pick<Store, 'readChanges' | 'close'>

/**
 * A connection of the thread's own: SQLite read-only (the server's connection goes on writing;
 * in WAL mode each statement here sees every transaction committed before it began), PostgreSQL a
 * pool of one. Neither migrates nor prunes: the server did and does that.
 */
async function openFeedReader(source: FeedSource): Promise<FeedReader> {
  if (source.kind === 'sqlite') {
    const { SqliteStore } = await import('../storage/sqlite/sqlite-store.js')
    return new SqliteStore(source.filename, { readOnly: true, cacheMiB: 32, changeRetentionMs: 0 })
  }
  const { PostgresStore } = await import('../storage/postgres/postgres-store.js')
  return new PostgresStore(source.url, {
    poolSize: 1,
    changeRetentionMs: 0,
    ...(source.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: source.connectTimeoutMs }),
    ...(source.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: source.statementTimeoutMs }),
    ...(source.pgbouncer === undefined ? {} : { pgbouncer: source.pgbouncer }),
  })
}

/**
 * The build thread (see index-builder.ts): reads the whole feed of one project, builds its index,
 * and posts it with its memory in the transfer list, plus the feed's token. The token is the
 * store's own for a full read, so it is consistent with what was read: SQLite takes the log's
 * position before the first page (a change after it is read again on catch-up, even when the scan
 * already saw it), PostgreSQL reads in one REPEATABLE READ snapshot and the token is that snapshot.
 */
export async function runIndexBuild(): Promise<void> {
  const port = parentPort as MessagePort
  const request = workerData as BuildRequest
  const post = (message: BuildMessage, transfer?: ArrayBuffer[]): void => port.postMessage(message, transfer)
  post({ type: 'started' })
  let reader: FeedReader | undefined
  try {
    reader = await openFeedReader(request.source)
    const index = new ProjectIndex(request.dictionaryLimit)
    const feed = reader.readChanges(request.projectId, null)
    let pages = 0
    let reported = performance.now()
    for await (const page of feed.pages) {
      for (const userId of page.deletedUserIds) index.remove(userId)
      for (const profile of page.upserts) index.upsert(profile.userId, profile.attributes)
      // The first page is reported at once: a budget too small even for it stops the build early.
      if (++pages === 1 || performance.now() - reported >= request.progressMs) {
        post({ type: 'progress', bytes: index.memoryBytes() })
        reported = performance.now()
      }
      if (pages === 1 && request.pauseAfterFirstPage) {
        post({ type: 'paused' })
        await once(port, 'message')
      }
    }
    const token = feed.token()
    const bytes = index.memoryBytes()
    const transfer = new TransferList()
    const snapshot = index.snapshot(transfer)
    post({ type: 'done', snapshot, token, bytes }, transfer.buffers)
  } catch (error) {
    post({
      type: 'failed',
      message: error instanceof Error ? error.message : String(error),
      // A spread project has no feed (not a failure): the server marks it answered by the database.
      notIndexed: error instanceof ProjectNotIndexedError,
    })
  } finally {
    await reader?.close().catch(() => undefined)
  }
}
