import { totalmem } from 'node:os'
import { parseDatabaseUrl } from '../storage/open-store.js'
import type { StoreOptions } from '../storage/store.js'

/** Server configuration: read once from the environment, validated, frozen. Nothing else reads `process.env`. */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface Config {
  /** TCP port. `PORT`, default 8080; 0 picks a free port. */
  readonly port: number
  /** Interface to bind. `HOST`, default 127.0.0.1 (loopback: put a proxy in front or set 0.0.0.0 on purpose). */
  readonly host: string
  /** `DATABASE_URL`: `sqlite:PATH` or `postgres://…`/`postgresql://…`. Default `sqlite:./data/traitbase.db`. */
  readonly databaseUrl: string
  /**
   * Largest request body in bytes. `BODY_LIMIT` (bytes, or with a KiB/MiB suffix), default 8 MiB: the largest
   * body the spec allows (100 rows × 50 values × 128 code points) fits even when every character is `\u`-escaped.
   */
  readonly bodyLimit: number
  /** PEM certificate and key paths (`TLS_CERT`, `TLS_KEY`): both set → the server speaks HTTPS itself. */
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  /** `LOG_LEVEL`, default `info`. */
  readonly logLevel: LogLevel
  /** Trust `X-Forwarded-*` from a proxy in front (`TRUST_PROXY=1`), default false. */
  readonly trustProxy: boolean
  /**
   * Segmentation (`SEGMENTS=on|off`, default on). Off drops the change log from every upload and
   * the segment/attribute routes answer 404: the baseline of the "uploads without segment support"
   * benchmark. Every server sharing one database must use the same setting.
   */
  readonly segments: boolean
  /**
   * A project's in-memory segment index is dropped after this many minutes without a query
   * (`SEGMENT_INDEX_IDLE_MINUTES`, default 30; 0 keeps every index for the life of the process).
   */
  readonly segmentIndexIdleMinutes: number
  /**
   * MiB all in-memory segment indexes of this process may hold together (`SEGMENT_INDEX_MEMORY_MB`,
   * default a quarter of the machine's memory). Past it the least recently queried project is
   * evicted; a project that does not fit alone is answered by the database path.
   */
  readonly segmentIndexMemoryMb: number
  /** Requests per minute per API key (`RATE_LIMIT`), answered 429 with `Retry-After` past it. Default 0: off. */
  readonly rateLimitPerMinute: number
  /**
   * `REDIS_URL` (`redis://…` or `rediss://…`): rate-limit counters shared by every process using it.
   * Unset (the default): each process counts on its own.
   */
  readonly redisUrl: string | undefined
  /** Timeouts in milliseconds; see {@link Timeouts}. */
  readonly timeouts: Timeouts
  /** The administration (issue 8); see {@link AdminConfig}. */
  readonly admin: AdminConfig
  /** PostgreSQL connection limits; see {@link DatabaseLimits}. */
  readonly database: DatabaseLimits
  /**
   * Server processes on this machine (`WEB_CONCURRENCY`, or `traitbase serve --workers N`), default 1.
   * More than one needs PostgreSQL: an SQLite database has one writer and lives in one process.
   */
  readonly workers: number
}

export interface AdminConfig {
  /**
   * `TRAITBASE_ADMIN_PASSWORD`: a console password besides (not instead of) the one stored by
   * `traitbase admin set-password`. Default none.
   */
  readonly password: string | undefined
  /** Console sessions expire after this many hours without use (`ADMIN_SESSION_HOURS`, default 12, sliding). */
  readonly sessionHours: number
  /** `REQUEST_LOG=on|off` (default on): the request log of every /v1 call. Off is the benchmark baseline. */
  readonly requestLog: boolean
  /** Newest entries kept per project (`REQUEST_LOG_MAX_PER_PROJECT`, default 10,000). */
  readonly requestLogMaxPerProject: number
  /** Entries older than this many days are dropped (`REQUEST_LOG_DAYS`, default 7). */
  readonly requestLogDays: number
}

/** How one process uses PostgreSQL. N processes open up to N × `poolSize` connections. */
export interface DatabaseLimits {
  /** Connections in each process's pool. `DATABASE_POOL_SIZE`, default 12. */
  readonly poolSize: number
  /**
   * Longest wait for a connection (a new one, or a free one from a busy pool) before the request is
   * answered 503 with `Retry-After`. `DATABASE_CONNECT_TIMEOUT_MS`, default 5000.
   */
  readonly connectTimeoutMs: number
  /**
   * Longest a statement may run before it is cancelled and the request answered 503 with `Retry-After`
   * (a slow or locked database never hangs a request). `DATABASE_STATEMENT_TIMEOUT_MS`, default 15000;
   * 0 = none. Migrations are not subject to it.
   */
  readonly statementTimeoutMs: number
  /** `DATABASE_PGBOUNCER=1`: connections go through PgBouncer (transaction pooling); see the README. */
  readonly pgbouncer: boolean
}

export interface Timeouts {
  /** Whole request (headers and body) must arrive within this. `REQUEST_TIMEOUT_MS`, default 30000. */
  readonly requestMs: number
  /** Headers must arrive within this (slowloris). `HEADERS_TIMEOUT_MS`, default 10000; at most `requestMs`. */
  readonly headersMs: number
  /**
   * Backstop: a socket with no traffic at all for this long is closed. `CONNECTION_TIMEOUT_MS`, default
   * 120000; must exceed `keepAliveMs`, or it would cut idle keep-alive connections first.
   */
  readonly connectionMs: number
  /**
   * Idle keep-alive sockets are closed after this. `KEEP_ALIVE_TIMEOUT_MS`, default 72000: longer than the
   * 60 s idle timeout of common load balancers, so the proxy, not us, closes first and never reuses a dead socket.
   */
  readonly keepAliveMs: number
  /** How often Node checks sockets against the request and header timeouts. Default 1000. */
  readonly checkIntervalMs: number
  /** Graceful shutdown gives in-flight requests this long before exiting anyway. `SHUTDOWN_TIMEOUT_MS`, default 10000. */
  readonly shutdownMs: number
}

const MIB = 1024 * 1024

export const DEFAULT_CONFIG: Config = Object.freeze({
  port: 8080,
  host: '127.0.0.1',
  databaseUrl: 'sqlite:./data/traitbase.db',
  bodyLimit: 8 * MIB,
  tlsCert: undefined,
  tlsKey: undefined,
  logLevel: 'info',
  trustProxy: false,
  segments: true,
  segmentIndexIdleMinutes: 30,
  segmentIndexMemoryMb: Math.max(64, Math.floor(totalmem() / MIB / 4)),
  rateLimitPerMinute: 0,
  redisUrl: undefined,
  timeouts: Object.freeze({
    requestMs: 30_000,
    headersMs: 10_000,
    connectionMs: 120_000,
    keepAliveMs: 72_000,
    checkIntervalMs: 1_000,
    shutdownMs: 10_000,
  }),
  admin: Object.freeze({
    password: undefined,
    sessionHours: 12,
    requestLog: true,
    requestLogMaxPerProject: 10_000,
    requestLogDays: 7,
  }),
  database: Object.freeze({ poolSize: 12, connectTimeoutMs: 5_000, statementTimeoutMs: 15_000, pgbouncer: false }),
  workers: 1,
})

/**
 * Validates the environment once. Throws one `Error` listing every bad variable, so a misconfigured
 * server refuses to start instead of half-working.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = []
  const d = DEFAULT_CONFIG
  const get = (name: string): string | undefined => {
    const v = env[name]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = get(name)
    if (raw === undefined) return fallback
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
      return fallback
    }
    return Number(raw)
  }

  const port = int('PORT', d.port, 0, 65535)
  const host = get('HOST') ?? d.host

  const databaseUrl = get('DATABASE_URL') ?? d.databaseUrl
  try {
    parseDatabaseUrl(databaseUrl)
  } catch (error) {
    problems.push((error as Error).message)
  }

  let bodyLimit = d.bodyLimit
  const rawLimit = get('BODY_LIMIT')
  if (rawLimit !== undefined) {
    const m = /^(\d+)\s*(B|KiB|MiB|KB|MB)?$/i.exec(rawLimit)
    const unit = (m?.[2] ?? 'b').toLowerCase()
    const factor = unit === 'kib' ? 1024 : unit === 'mib' ? MIB : unit === 'kb' ? 1000 : unit === 'mb' ? 1e6 : 1
    const bytes = m ? Number(m[1]) * factor : NaN
    // 1 KiB floor: below that not even the spec's example fits; 1 GiB ceiling: bodies are held in memory.
    if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > 1024 * MIB) {
      problems.push(`BODY_LIMIT must be a size from 1KiB to 1024MiB (e.g. 8388608 or 8MiB), got "${rawLimit}"`)
    } else {
      bodyLimit = bytes
    }
  }

  const tlsCert = get('TLS_CERT')
  const tlsKey = get('TLS_KEY')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    problems.push('TLS_CERT and TLS_KEY must be set together (paths to PEM files) or not at all')
  }

  const rawLevel = get('LOG_LEVEL')?.toLowerCase() ?? d.logLevel
  const logLevel = (LOG_LEVELS as readonly string[]).includes(rawLevel) ? (rawLevel as LogLevel) : d.logLevel
  if (logLevel !== rawLevel) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${rawLevel}"`)

  const rawProxy = get('TRUST_PROXY')?.toLowerCase()
  if (rawProxy !== undefined && !['0', '1', 'true', 'false'].includes(rawProxy)) {
    problems.push(`TRUST_PROXY must be 1/true or 0/false, got "${rawProxy}"`)
  }
  const trustProxy = rawProxy === '1' || rawProxy === 'true'

  const rawSegments = get('SEGMENTS')?.toLowerCase()
  if (rawSegments !== undefined && !['on', 'off'].includes(rawSegments)) {
    problems.push(`SEGMENTS must be on or off, got "${rawSegments}"`)
  }
  const segments = rawSegments !== 'off'
  const segmentIndexIdleMinutes = int('SEGMENT_INDEX_IDLE_MINUTES', d.segmentIndexIdleMinutes, 0, 7 * 24 * 60)
  const segmentIndexMemoryMb = int('SEGMENT_INDEX_MEMORY_MB', d.segmentIndexMemoryMb, 1, 16 * MIB)
  const rateLimitPerMinute = int('RATE_LIMIT', d.rateLimitPerMinute, 0, 10_000_000)
  const redisUrl = get('REDIS_URL')
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    problems.push(
      `REDIS_URL must be redis://HOST[:PORT][/DB] or rediss://…, got "${redisUrl.replace(/\/\/[^@/]*@/, '//***@')}"`,
    )
  }

  const hour = 3_600_000
  const requestMs = int('REQUEST_TIMEOUT_MS', d.timeouts.requestMs, 100, hour)
  const headersMs = int('HEADERS_TIMEOUT_MS', Math.min(d.timeouts.headersMs, requestMs), 100, hour)
  // Node refuses a headers timeout longer than the request timeout.
  if (headersMs > requestMs)
    problems.push(`HEADERS_TIMEOUT_MS (${headersMs}) must not exceed REQUEST_TIMEOUT_MS (${requestMs})`)
  const keepAliveMs = int('KEEP_ALIVE_TIMEOUT_MS', d.timeouts.keepAliveMs, 100, hour)
  const connectionMs = int('CONNECTION_TIMEOUT_MS', Math.max(d.timeouts.connectionMs, keepAliveMs + 1000), 100, hour)
  if (connectionMs <= keepAliveMs) {
    problems.push(`CONNECTION_TIMEOUT_MS (${connectionMs}) must exceed KEEP_ALIVE_TIMEOUT_MS (${keepAliveMs})`)
  }
  const timeouts: Timeouts = Object.freeze({
    requestMs,
    headersMs,
    connectionMs,
    keepAliveMs,
    checkIntervalMs: Math.min(d.timeouts.checkIntervalMs, headersMs),
    shutdownMs: int('SHUTDOWN_TIMEOUT_MS', d.timeouts.shutdownMs, 0, hour),
  })

  const rawLog = get('REQUEST_LOG')?.toLowerCase()
  if (rawLog !== undefined && !['on', 'off'].includes(rawLog)) {
    problems.push(`REQUEST_LOG must be on or off, got "${rawLog}"`)
  }
  // The password is taken as given (not trimmed): spaces may be part of it.
  const password = env['TRAITBASE_ADMIN_PASSWORD']
  const admin: AdminConfig = Object.freeze({
    password: password === undefined || password === '' ? undefined : password,
    sessionHours: int('ADMIN_SESSION_HOURS', d.admin.sessionHours, 1, 24 * 30),
    requestLog: rawLog !== 'off',
    requestLogMaxPerProject: int('REQUEST_LOG_MAX_PER_PROJECT', d.admin.requestLogMaxPerProject, 1, 10_000_000),
    requestLogDays: int('REQUEST_LOG_DAYS', d.admin.requestLogDays, 1, 3650),
  })
  const rawBouncer = get('DATABASE_PGBOUNCER')?.toLowerCase()
  if (rawBouncer !== undefined && !['0', '1', 'true', 'false'].includes(rawBouncer)) {
    problems.push(`DATABASE_PGBOUNCER must be 1/true or 0/false, got "${rawBouncer}"`)
  }
  const database: DatabaseLimits = Object.freeze({
    poolSize: int('DATABASE_POOL_SIZE', d.database.poolSize, 1, 1000),
    connectTimeoutMs: int('DATABASE_CONNECT_TIMEOUT_MS', d.database.connectTimeoutMs, 100, hour),
    statementTimeoutMs: int('DATABASE_STATEMENT_TIMEOUT_MS', d.database.statementTimeoutMs, 0, hour),
    pgbouncer: rawBouncer === '1' || rawBouncer === 'true',
  })
  const workers = int('WEB_CONCURRENCY', d.workers, 1, 256)

  if (problems.length > 0) throw new Error(`Invalid configuration:\n  ${problems.join('\n  ')}`)
  return Object.freeze({
    port,
    host,
    databaseUrl,
    bodyLimit,
    tlsCert,
    tlsKey,
    logLevel,
    trustProxy,
    segments,
    segmentIndexIdleMinutes,
    segmentIndexMemoryMb,
    rateLimitPerMinute,
    redisUrl,
    timeouts,
    admin,
    database,
    workers,
  })
}

/** The store options every server process opens its database with. */
export function storeOptionsOf(config: Config): StoreOptions {
  return {
    changeLog: config.segments,
    poolSize: config.database.poolSize,
    connectTimeoutMs: config.database.connectTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
    pgbouncer: config.database.pgbouncer,
  }
}
