import { Worker } from 'node:worker_threads'
import { parseDatabaseUrl } from '../storage/open-store.js'
import { ProjectNotIndexedError, type StoreOptions } from '../storage/store.js'
import type { ProjectIndexSnapshot } from './project-index.js'

/**
 * Where a build thread reads the change feed: the same database as the server, on a connection of
 * its own (SQLite: a read-only connection to the file; PostgreSQL and Citus: a pool of one).
 */
export type FeedSource =
  | { readonly kind: 'sqlite'; readonly filename: string }
  | {
      readonly kind: 'postgres'
      readonly url: string
      readonly connectTimeoutMs?: number
      readonly statementTimeoutMs?: number
      readonly pgbouncer?: boolean
    }

/**
 * The source a server on `databaseUrl` gives its build threads, or undefined when no other thread
 * can open the database (an in-memory SQLite database exists on one connection only).
 */
export function feedSourceOf(databaseUrl: string, options: StoreOptions = {}): FeedSource | undefined {
  const target = parseDatabaseUrl(databaseUrl)
  if (target.kind === 'sqlite')
    return target.filename === ':memory:' ? undefined : { kind: 'sqlite', filename: target.filename }
  return {
    kind: 'postgres',
    url: target.url,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
    ...(options.pgbouncer === undefined ? {} : { pgbouncer: options.pgbouncer }),
  }
}

/** What the build thread is given (workerData). */
export interface BuildRequest {
  readonly source: FeedSource
  readonly projectId: number
  readonly dictionaryLimit: number | undefined
  /** Tests: the thread stops after the first page until the main thread says `resume`. */
  readonly pauseAfterFirstPage: boolean
  /** Least time between two reports of the bytes built so far. */
  readonly progressMs: number
}

/** Messages from the build thread. */
export type BuildMessage =
  | { readonly type: 'started' }
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'paused' }
  | { readonly type: 'done'; readonly snapshot: ProjectIndexSnapshot; readonly token: string; readonly bytes: number }
  | { readonly type: 'failed'; readonly message: string; readonly notIndexed: boolean }

/** The index a build thread handed over, and the feed token it read at. */
export interface BuiltIndex {
  readonly snapshot: ProjectIndexSnapshot
  /** Catching up from here misses no change made after the snapshot (a change may be read twice). */
  readonly token: string
  readonly bytes: number
}

/** The build thread could not be started at all (as opposed to a build that failed). */
export class WorkerStartError extends Error {}

export interface WorkerBuildOptions {
  readonly source: FeedSource
  readonly projectId: number
  readonly dictionaryLimit: number | undefined
  /** Bytes built so far, every `progressMs`; throwing (over the memory budget) stops the build with that error. */
  readonly onProgress: (bytes: number) => void
  readonly progressMs?: number
  /** Tests: called after the first page; the build goes on once it resolves. */
  readonly afterFirstPage?: () => Promise<void>
  /** Stops the build (the thread is terminated). */
  readonly signal?: AbortSignal
  /** Tests: the module the thread runs (a missing one makes the thread fail to start). */
  readonly moduleUrl?: string
}

/** Running from TypeScript source (tests under tsx) rather than dist/. */
const UNDER_TSX = import.meta.url.endsWith('.ts')

/**
 * The thread's code is inline (eval), so it runs the same under tsx and from dist/: under tsx it
 * registers tsx's loader first (a worker does not inherit it), then imports the build module. An
 * import that fails is an uncaught error before `started`: the thread could not start.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads')
const loader = workerData.tsxApi === undefined ? Promise.resolve() : import(workerData.tsxApi).then((tsx) => tsx.register())
loader.then(() => import(workerData.moduleUrl)).then((m) => m.runIndexBuild())
`

/**
 * Builds the project's index on a worker thread from a full read of the feed, and resolves with its
 * typed arrays, handed over without a copy. Rejects with {@link WorkerStartError} when the thread
 * cannot start, with the thread's error when the build fails, or with `onProgress`'s error.
 */
export function buildInWorker(options: WorkerBuildOptions): Promise<BuiltIndex> {
  return new Promise<BuiltIndex>((resolve, reject) => {
    const request: BuildRequest = {
      source: options.source,
      projectId: options.projectId,
      dictionaryLimit: options.dictionaryLimit,
      pauseAfterFirstPage: options.afterFirstPage !== undefined,
      progressMs: options.progressMs ?? 100,
    }
    let worker: Worker
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          ...request,
          moduleUrl:
            options.moduleUrl ?? new URL(`./index-build-worker${UNDER_TSX ? '.ts' : '.js'}`, import.meta.url).href,
          ...(UNDER_TSX ? { tsxApi: import.meta.resolve('tsx/esm/api') } : {}),
        },
      })
    } catch (error) {
      reject(new WorkerStartError(error instanceof Error ? error.message : String(error)))
      return
    }
    let started = false
    let settled = false
    const onAbort = (): void => finish(new Error('the build was stopped (the segment index closed)'))
    const finish = (error: Error | undefined, built?: BuiltIndex): void => {
      if (settled) return
      settled = true
      options.signal?.removeEventListener('abort', onAbort)
      if (error === undefined) resolve(built as BuiltIndex)
      else {
        void worker.terminate()
        reject(error)
      }
    }
    if (options.signal?.aborted === true) return onAbort()
    options.signal?.addEventListener('abort', onAbort)
    worker.on('message', (m: BuildMessage) => {
      switch (m.type) {
        case 'started':
          started = true
          return
        case 'progress':
          try {
            options.onProgress(m.bytes)
          } catch (error) {
            finish(error instanceof Error ? error : new Error(String(error)))
          }
          return
        case 'paused':
          if (settled) return
          void (options.afterFirstPage?.() ?? Promise.resolve()).finally(() => {
            if (!settled) worker.postMessage({ type: 'resume' })
          })
          return
        case 'done':
          return finish(undefined, { snapshot: m.snapshot, token: m.token, bytes: m.bytes })
        case 'failed':
          return finish(m.notIndexed ? new ProjectNotIndexedError(options.projectId) : new Error(m.message))
      }
    })
    // A thread that dies is a failed build (or one that could not start), never a crash of the server.
    worker.on('error', (error) => finish(started ? error : new WorkerStartError(error.message)))
    worker.on('exit', (code) => {
      const message = `the index build thread exited (code ${code})`
      finish(started ? new Error(message) : new WorkerStartError(message))
    })
  })
}
