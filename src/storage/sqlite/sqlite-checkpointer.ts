import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/**
 * Checkpoints the WAL from a worker thread with its own connection, so copying pages back into the
 * database file (and its fsync) never runs on the event loop inside a commit.
 *
 * PASSIVE checkpoints never block the writer, but SQLite restarts the WAL from its beginning only
 * when a write transaction begins while every frame is already checkpointed. A busy group-commit
 * writer is almost never in that state, so the WAL would grow without bound. Hence `catchUp()`:
 * once the WAL holds more than `restartFrames`, the store awaits a complete checkpoint before its
 * next flush (the event loop keeps serving; requests just join a larger next flush), and that
 * flush restarts the WAL.
 *
 * The worker's code is inline (eval), so it runs the same under tsx and from dist/.
 */
export interface CheckpointerOptions {
  readonly filename: string
  /** Pause between background checkpoints. Default 100 ms. */
  readonly intervalMs?: number
  /** WAL frames after which the writer waits for a complete checkpoint. Default 16,384 (64 MiB of 4 KiB pages). */
  readonly restartFrames?: number
  /** Called when the worker ends without `stop()`, so the store can fall back to inline checkpoints. */
  readonly onFailure?: () => void
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.filename)
db.pragma('busy_timeout = 5000')
let timer
function checkpoint() {
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0]
    return { log: r.log, checkpointed: r.checkpointed, busy: r.busy }
  } catch (error) {
    return { error: String(error && error.message) }
  }
}
function tick() {
  parentPort.postMessage({ id: 0, ...checkpoint() })
  timer = setTimeout(tick, workerData.intervalMs)
}
parentPort.on('message', (m) => {
  if (m.type === 'stop') { clearTimeout(timer); db.close(); parentPort.close(); return }
  parentPort.postMessage({ id: m.id, ...checkpoint() })
})
timer = setTimeout(tick, workerData.intervalMs)
`

interface CheckpointReport {
  readonly id: number
  readonly log?: number
  readonly checkpointed?: number
  readonly busy?: number
  readonly error?: string
}

export class Checkpointer {
  private readonly worker: Worker
  private readonly restartFrames: number
  private readonly exited: Promise<void>
  private walFrames = 0
  private nextId = 1
  private readonly waiting = new Map<number, (report: CheckpointReport) => void>()
  private stopped = false
  private stopRequested = false

  constructor(options: CheckpointerOptions) {
    this.restartFrames = options.restartFrames ?? 16_384
    const driver = createRequire(import.meta.url).resolve('better-sqlite3')
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, filename: options.filename, intervalMs: options.intervalMs ?? 100 },
    })
    this.worker.on('message', (report: CheckpointReport) => {
      if (report.log !== undefined) this.walFrames = report.log
      const resolve = this.waiting.get(report.id)
      if (resolve !== undefined) {
        this.waiting.delete(report.id)
        resolve(report)
      }
    })
    // Without the worker, commits still work; only the WAL grows. A failing worker must not crash the server.
    this.worker.on('error', () => undefined)
    this.worker.unref()
    this.exited = new Promise<void>((resolve) =>
      this.worker.once('exit', () => {
        this.stopped = true
        if (!this.stopRequested) options.onFailure?.()
        for (const resolveReport of this.waiting.values()) resolveReport({ id: -1, error: 'checkpointer stopped' })
        this.waiting.clear()
        resolve()
      }),
    )
  }

  /** True when the WAL is long enough that the writer should wait for `catchUp()` before its next flush. */
  get shouldCatchUp(): boolean {
    return !this.stopped && this.walFrames > this.restartFrames
  }

  /**
   * Resolves once one checkpoint has copied every frame (or after a few tries, so a reader holding
   * old frames cannot stall the writer for long). The caller must not commit while waiting.
   */
  async catchUp(): Promise<void> {
    // Pending writes wait on this; keep the process alive until they are committed.
    this.worker.ref()
    try {
      await this.checkpointFully()
    } finally {
      this.worker.unref()
    }
  }

  private async checkpointFully(): Promise<void> {
    for (let attempt = 0; attempt < 5 && !this.stopped; attempt++) {
      const id = this.nextId++
      const report = await new Promise<CheckpointReport>((resolve) => {
        this.waiting.set(id, resolve)
        this.worker.postMessage({ type: 'checkpoint', id })
      })
      if (report.error !== undefined) return
      if (report.log === report.checkpointed) {
        this.walFrames = 0
        return
      }
    }
  }

  stop(): Promise<void> {
    this.stopRequested = true
    if (!this.stopped) {
      // Keep the process alive until the worker has closed its connection.
      this.worker.ref()
      this.worker.postMessage({ type: 'stop' })
    }
    return this.exited
  }
}
