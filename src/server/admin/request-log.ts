import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RequestLogEntry, Store, UploadOutcome } from '../../storage/store.js'
import type { Clock } from '../envelope.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** What an upload did (set by the profiles route), for the request log. */
    uploadOutcome: UploadOutcome | null
    /** True for `?dry_run=true` uploads. */
    dryRun: boolean
    /** The `msg` of a failure answer, caught in onSend for the request log. */
    failureMsg: string | null
  }
}

export interface RequestLogOptions {
  readonly store: Store
  readonly now: Clock
  readonly log: FastifyBaseLogger
  readonly maxPerProject: number
  readonly days: number
  /** Pause between flushes. Default 250 ms: the console polls every 2 s. */
  readonly flushMs?: number
  /** Pause between prunes. Default 60 s. */
  readonly pruneMs?: number
}

/** Entries per insert: one flush of a busy second is a few statements, not thousands. */
const FLUSH_BATCH = 1000
/** Entries held while the database does not take them; beyond this the oldest are dropped (and counted). */
const MAX_BUFFERED = 100_000
/** Paths are cut to this length: a 1,500-character user id does not belong in every log row. */
const MAX_PATH = 512

/**
 * The request log writer: requests push entries into memory (no I/O on the request's path); a
 * timer inserts them in batches and prunes the table to its bounds. With several processes each
 * writes its own entries into the shared table.
 */
export class RequestLogWriter {
  private buffer: RequestLogEntry[] = []
  private flushing: Promise<void> | undefined
  private readonly flushTimer: NodeJS.Timeout
  private readonly pruneTimer: NodeJS.Timeout
  private dropped = 0
  private closed = false

  constructor(private readonly options: RequestLogOptions) {
    this.flushTimer = setInterval(() => void this.flush(), options.flushMs ?? 250)
    this.flushTimer.unref()
    this.pruneTimer = setInterval(() => void this.prune(), options.pruneMs ?? 60_000)
    this.pruneTimer.unref()
  }

  record(entry: RequestLogEntry): void {
    if (this.closed) return
    if (this.buffer.length >= MAX_BUFFERED) {
      this.buffer.shift()
      this.dropped++
    }
    this.buffer.push(entry)
  }

  /** Writes what is buffered; resolves when it is in the database (or failed and was logged). */
  async flush(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    this.flushing = (async () => {
      for (let i = 0; i < batch.length; i += FLUSH_BATCH) {
        await this.options.store.appendRequestLog(batch.slice(i, i + FLUSH_BATCH))
      }
    })()
      .catch((error: unknown) => {
        // The database is down: keep the entries for the next try rather than lose them.
        this.buffer = batch.concat(this.buffer).slice(-MAX_BUFFERED)
        this.options.log.warn({ err: error, entries: batch.length }, 'could not write the request log')
      })
      .finally(() => {
        this.flushing = undefined
      })
    await this.flushing
    if (this.dropped > 0) {
      this.options.log.warn({ dropped: this.dropped }, 'request log entries dropped while the database was unavailable')
      this.dropped = 0
    }
  }

  async prune(): Promise<void> {
    const at = this.options.now()
    try {
      await this.options.store.pruneAdminData({
        maxPerProject: this.options.maxPerProject,
        olderThan: new Date(at - this.options.days * 86_400_000),
        now: new Date(at),
      })
    } catch (error) {
      this.options.log.warn({ err: error }, 'could not prune the request log')
    }
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer)
    clearInterval(this.pruneTimer)
    await this.flush()
    this.closed = true
  }
}

/**
 * Hooks of the /v1 context that feed the writer. `onSend` keeps the `msg` of failures (the exact
 * text the client got); `onResponse` records the call once it is answered. Calls without a known
 * key (401 for a missing or unknown key) belong to no project and are not logged here; the
 * `http_requests_total` metric counts them.
 */
export function registerRequestLogHooks(app: FastifyInstance, writer: RequestLogWriter, now: Clock): void {
  app.addHook('onSend', (request: FastifyRequest, reply: FastifyReply, payload: unknown, done) => {
    if (reply.statusCode >= 400 && request.auth !== null && typeof payload === 'string') {
      try {
        const msg = (JSON.parse(payload) as { msg?: unknown }).msg
        if (typeof msg === 'string') request.failureMsg = msg
      } catch {
        // Not our JSON envelope: no message to keep.
      }
    }
    done(null, payload)
  })
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    const auth = request.auth
    if (auth !== null) {
      const outcome = request.uploadOutcome
      const status = reply.statusCode
      writer.record({
        projectId: auth.projectId,
        time: Math.round(now() - reply.elapsedTime),
        method: request.method,
        path: request.url.length > MAX_PATH ? `${request.url.slice(0, MAX_PATH)}…` : request.url,
        keyId: auth.keyId,
        keyLabel: auth.keyLabel,
        requestId: request.id,
        status,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        usersCreated: outcome?.created ?? null,
        usersUpdated: outcome?.updated ?? null,
        error: status >= 400 ? (request.failureMsg ?? `HTTP ${status}`) : null,
        dryRun: request.dryRun,
        upload: outcome !== null && status < 300,
      })
    }
    done()
  })
}
