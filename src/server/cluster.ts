import cluster, { type Worker } from 'node:cluster'
import { DEFAULT_CONFIG, type Config } from './config.js'

/** A worker that ran at least this long before dying is a fresh failure: its restart delay starts over. */
const STABLE_MS = 60_000
/** Restart delays double from this up to {@link MAX_BACKOFF_MS}, so a crash loop does not spin. */
const FIRST_BACKOFF_MS = 500
const MAX_BACKOFF_MS = 30_000

/** One line of the primary's log: JSON like the workers' pino lines, so one parser reads both. */
export type PrimaryLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface PrimaryOptions {
  readonly config: Config
  readonly workers: number
  /**
   * Environment overrides per worker (on top of the primary's own environment), e.g. a memory budget
   * divided among the workers.
   */
  readonly workerEnv: Readonly<Record<string, string>>
  readonly log: PrimaryLog
  /** The script each worker runs (the server's main module), whatever entry started the primary. */
  readonly exec: string
}

/**
 * The `node:cluster` primary of `traitbase serve --workers N`: forks N server processes that share the
 * listening socket (the primary hands connections out round-robin), restarts one that dies with a
 * doubling delay, and on SIGTERM/SIGINT asks every worker to shut down gracefully (each finishes its
 * in-flight requests, see main.ts) and exits when all have: 0 if all stopped cleanly.
 * The database is migrated by the caller before this runs, once, not by N processes racing.
 */
export function runPrimary({ config, workers, workerEnv, log, exec }: PrimaryOptions): void {
  cluster.setupPrimary({ exec, args: [] })
  let stopping = false
  let exitCode = 0
  const failures = new Map<number, number>() // slot → consecutive quick deaths
  const slots = new Map<Worker, { slot: number; startedAt: number }>()

  const fork = (slot: number): void => {
    const worker = cluster.fork({ ...workerEnv, TRAITBASE_WORKER: String(slot) })
    slots.set(worker, { slot, startedAt: Date.now() })
  }

  cluster.on('exit', (worker, code, signal) => {
    const info = slots.get(worker)
    slots.delete(worker)
    if (info === undefined) return
    if (stopping) {
      if (code !== 0) exitCode = 1
      if (slots.size === 0) finish()
      return
    }
    const lived = Date.now() - info.startedAt
    const quick = lived < STABLE_MS ? (failures.get(info.slot) ?? 0) + 1 : 1
    failures.set(info.slot, quick)
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (quick - 1))
    log('error', 'worker died; restarting it', {
      worker: info.slot,
      pid: worker.process.pid,
      code,
      signal,
      delayMs: delay,
    })
    setTimeout(() => {
      if (!stopping) fork(info.slot)
    }, delay).unref()
  })

  const finish = (): void => {
    log('info', 'all workers stopped', { exitCode })
    process.exit(exitCode)
  }

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    log('info', 'shutting down: asking every worker to finish its in-flight requests', { signal })
    if (slots.size === 0) finish()
    for (const worker of slots.keys()) worker.process.kill('SIGTERM')
    // Workers exit on their own within SHUTDOWN_TIMEOUT_MS; this is the backstop for a stuck one.
    setTimeout(() => {
      log('error', 'workers did not stop in time; killing them', { timeoutMs: config.timeouts.shutdownMs })
      for (const worker of slots.keys()) worker.process.kill('SIGKILL')
      process.exit(1)
    }, config.timeouts.shutdownMs + 2_000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  for (let slot = 1; slot <= workers; slot++) fork(slot)
}

/**
 * Each process keeps its own segment indexes, so the budget meant for the machine is divided among
 * the workers: `SEGMENT_INDEX_MEMORY_MB` when set, else the default (a quarter of the machine), is
 * the total for all of them, never N times it. A malformed value is left for the worker's own
 * configuration check to refuse.
 */
export function divideMemoryBudget(
  totalMb: string | undefined,
  workers: number,
  defaultMb = DEFAULT_CONFIG.segmentIndexMemoryMb,
): Record<string, string> {
  const given = totalMb?.trim()
  if (given !== undefined && given !== '' && !/^\d+$/.test(given)) return {}
  const total = given === undefined || given === '' ? defaultMb : Number(given)
  return { SEGMENT_INDEX_MEMORY_MB: String(Math.max(1, Math.floor(total / workers))) }
}
