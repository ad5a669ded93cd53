import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/**
 * Runs long reads (segment counts and pages without the in-memory index, export pages) on a worker
 * thread with its own read-only connection, so a scan of a million rows never holds the event loop
 * that uploads, queries and /healthz share. In WAL mode the reader sees every transaction committed
 * before its statement starts, so every upload acknowledged before the read is in its answer.
 *
 * The worker's code is inline (eval), so it runs the same under tsx and from dist/. It registers
 * the store's SQL functions (`tb_number`, `tb_date_in`) by importing the same module the store's
 * connection uses (a worker inherits the loader flags, so under tsx the import resolves to the .ts).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.filename, { readonly: true, fileMustExist: true })
db.pragma('busy_timeout = 5000')
db.pragma('cache_size = ' + -1024 * workerData.cacheMiB)
db.pragma('mmap_size = ' + 1024 * 1024 * workerData.mmapMiB)
// The store's own SQL functions (tb_number, tb_date_in), from the same module, so both connections
// answer every condition alike.
// Under tsx (tests) the module is TypeScript: the worker registers tsx's loader first (workers do
// not inherit it); from dist/ it is plain JavaScript and tsx is never loaded.
const loader = workerData.tsxApi === undefined ? Promise.resolve() : import(workerData.tsxApi).then((tsx) => tsx.register())
const ready = loader.then(() => import(workerData.dialectUrl)).then((dialect) => dialect.registerSqliteFunctions(db))
const statements = new Map()
function statement(sql) {
  let s = statements.get(sql)
  if (s === undefined) {
    s = db.prepare(sql)
    if (statements.size > 200) statements.clear()
    statements.set(sql, s)
  }
  return s
}
parentPort.on('message', (m) => {
  if (m.type === 'stop') { ready.finally(() => { db.close(); parentPort.close() }); return }
  ready.then(() => {
    const s = statement(m.sql)
    const result = m.mode === 'value' ? s.pluck().get(...m.params) : s.pluck(false).all(...m.params)
    parentPort.postMessage({ id: m.id, result })
  }).catch((error) => {
    parentPort.postMessage({ id: m.id, error: String(error && error.message) })
  })
})
`

export interface SqliteReaderOptions {
  readonly filename: string
  readonly cacheMiB: number
  readonly mmapMiB: number
}

interface Pending {
  readonly resolve: (result: unknown) => void
  readonly reject: (error: Error) => void
}

/** One reader thread; {@link available} turns false if it dies, and the store then reads on its own connection. */
export class SqliteReader {
  private readonly worker: Worker
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private stopped = false
  private stopRequested = false
  private readonly exited: Promise<void>

  constructor(options: SqliteReaderOptions) {
    const require = createRequire(import.meta.url)
    const driver = require.resolve('better-sqlite3')
    // Running from TypeScript source (tests under tsx) rather than dist/.
    const underTsx = import.meta.url.endsWith('.ts')
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        filename: options.filename,
        cacheMiB: options.cacheMiB,
        mmapMiB: options.mmapMiB,
        dialectUrl: new URL(`../sql-dialect${underTsx ? '.ts' : '.js'}`, import.meta.url).href,
        ...(underTsx ? { tsxApi: import.meta.resolve('tsx/esm/api') } : {}),
      },
    })
    this.worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const waiting = this.pending.get(m.id)
      if (waiting === undefined) return
      this.pending.delete(m.id)
      if (this.pending.size === 0) this.worker.unref()
      if (m.error !== undefined) waiting.reject(new Error(m.error))
      else waiting.resolve(m.result)
    })
    // A failing worker must not crash the server: reads go back to the store's own connection.
    this.worker.on('error', () => undefined)
    this.worker.unref()
    this.exited = new Promise<void>((resolve) =>
      this.worker.once('exit', () => {
        this.stopped = true
        for (const waiting of this.pending.values()) waiting.reject(new Error('The SQLite reader thread stopped'))
        this.pending.clear()
        resolve()
      }),
    )
  }

  /** False once the thread has ended. */
  get available(): boolean {
    return !this.stopped && !this.stopRequested
  }

  /** Rows of `sql` (objects), or with `mode: 'value'` the first column of the first row. */
  run(sql: string, params: readonly unknown[], mode: 'all' | 'value'): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++
      this.pending.set(id, { resolve, reject })
      // A read in flight keeps the process alive until it answers.
      this.worker.ref()
      this.worker.postMessage({ id, sql, params, mode })
    })
  }

  stop(): Promise<void> {
    this.stopRequested = true
    if (!this.stopped) {
      this.worker.ref()
      this.worker.postMessage({ type: 'stop' })
    }
    return this.exited
  }
}
