import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { openStore, parseDatabaseUrl } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { feedSourceOf } from '../segments/index-builder.js'
import { buildApp } from './app.js'
import { divideMemoryBudget, runPrimary, type PrimaryLog } from './cluster.js'
import { loadConfig, storeOptionsOf, type Config } from './config.js'

const USAGE = `Usage: traitbase serve [--workers N]

Runs the server (configuration from the environment, see the README).
  --workers N  N server processes on this machine sharing the port (node:cluster); default
               WEB_CONCURRENCY or 1. More than one needs PostgreSQL (DATABASE_URL=postgres://…).
`

/** `--workers N` (or `--workers=N`) and `--help`; anything else is a usage error. */
function parseArgs(argv: readonly string[]): { workers?: number; help?: true } {
  const out: { workers?: number; help?: true } = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--help' || arg === '-h') out.help = true
    else if (arg === '--workers' || arg.startsWith('--workers=')) {
      const raw = arg === '--workers' ? argv[++i] : arg.slice('--workers='.length)
      if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 256) {
        throw new Error(`--workers takes a number of processes from 1 to 256, got "${raw ?? ''}"`)
      }
      out.workers = Number(raw)
    } else throw new Error(`Unknown argument "${arg}"`)
  }
  return out
}

const primaryLog: PrimaryLog = (level, msg, fields = {}) => {
  const line = {
    level: level === 'info' ? 30 : level === 'warn' ? 40 : 50,
    time: Date.now(),
    pid: process.pid,
    role: 'primary',
    ...fields,
    msg,
  }
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

/**
 * The server's entry point: the only place that reads `process.env` and the arguments. One process
 * serves by itself; with `--workers N` / `WEB_CONCURRENCY=N` (N > 1, PostgreSQL only) this process
 * migrates the database once and becomes the `node:cluster` primary of N server processes.
 */
async function main(): Promise<void> {
  let config: Config
  let args: ReturnType<typeof parseArgs>
  try {
    args = parseArgs(process.argv.slice(2))
    config = loadConfig(process.env)
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    if (!(error instanceof Error && error.message.startsWith('Invalid configuration'))) process.stderr.write(USAGE)
    process.exit(78) // EX_CONFIG (sysexits.h): configuration error
  }
  if (args.help === true) {
    process.stdout.write(USAGE)
    return
  }
  if (cluster.isPrimary) {
    const workers = args.workers ?? config.workers
    if (workers > 1 && parseDatabaseUrl(config.databaseUrl).kind === 'sqlite') {
      // SQLite has one writer and its group commit lives in one process: N processes would queue on
      // the file lock. An explicit --workers is refused; WEB_CONCURRENCY, which hosting platforms set
      // on their own, gets one process and a warning.
      const why = 'SQLite serves from one process; several server processes need PostgreSQL (DATABASE_URL=postgres://…)'
      if (args.workers !== undefined) {
        process.stderr.write(`traitbase: --workers ${workers} refused: ${why}\n`)
        process.exit(78)
      }
      primaryLog('warn', `WEB_CONCURRENCY=${workers} ignored: ${why}; running one process`)
    } else if (workers > 1) {
      // Migrate once here, so N workers do not all wait on the migration lock at start.
      await migrate(config)
      primaryLog('info', `starting ${workers} server processes`, {
        workers,
        maxDatabaseConnections: workers * config.database.poolSize,
      })
      runPrimary({
        config,
        workers,
        workerEnv: divideMemoryBudget(process.env['SEGMENT_INDEX_MEMORY_MB'], workers),
        log: primaryLog,
        exec: fileURLToPath(import.meta.url),
      })
      return
    }
  }
  if (cluster.isPrimary && parseDatabaseUrl(config.databaseUrl).kind === 'postgres') await migrate(config)
  await serve(config)
}

/**
 * Migrates on a connection of its own, free of DATABASE_STATEMENT_TIMEOUT_MS: a migration on a big
 * table may run for minutes, which no request should. The serving store's own migrate() is then a no-op.
 */
async function migrate(config: Config): Promise<void> {
  const store = await openStore(config.databaseUrl, { changeLog: config.segments, poolSize: 1 })
  await store.close()
}

/**
 * One server process. SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the
 * database, exit 0; after `SHUTDOWN_TIMEOUT_MS` it exits 1 anyway.
 */
async function serve(config: Config): Promise<void> {
  let tls: { key: Buffer; cert: Buffer } | undefined
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    try {
      tls = { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
    } catch (error) {
      process.stderr.write(`Cannot read TLS_CERT/TLS_KEY: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exit(78)
    }
  }

  // A signal while the store opens (a worker replaced just before a shutdown): stop right after.
  let signalledEarly: NodeJS.Signals | undefined
  const early = (signal: NodeJS.Signals): void => {
    signalledEarly = signal
  }
  process.on('SIGTERM', early)
  process.on('SIGINT', early)
  // openStore runs the migrations (safe when several servers start at once; a no-op once done).
  const store: Store = await openStore(config.databaseUrl, storeOptionsOf(config))
  const indexBuildSource = feedSourceOf(config.databaseUrl, storeOptionsOf(config))
  const app = buildApp({
    store,
    config,
    ...(tls === undefined ? {} : { tls }),
    ...(indexBuildSource === undefined ? {} : { indexBuildSource }),
  })
  process.off('SIGTERM', early)
  process.off('SIGINT', early)

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    const deadline = setTimeout(() => {
      app.log.error({ timeoutMs: config.timeouts.shutdownMs }, 'shutdown timed out, exiting')
      process.exit(1)
    }, config.timeouts.shutdownMs)
    deadline.unref()
    app
      .close()
      .then(() => store.close())
      .then(() => {
        app.log.info('stopped')
        process.exit(0)
      })
      .catch((error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  if (signalledEarly !== undefined) return stop(signalledEarly)

  try {
    const address = await app.listen({ port: config.port, host: config.host })
    app.log.info({ store: store.kind, tls: tls !== undefined }, `traitbase listening on ${address}`)
  } catch (error) {
    // One clear line, as for configuration errors: a port in use or a bad HOST is not a crash.
    const code = (error as { code?: unknown }).code
    const why =
      code === 'EADDRINUSE'
        ? 'the port is already in use (set PORT to another one)'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges; set PORT)'
          : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'HOST is not an address of this machine'
            : error instanceof Error
              ? error.message
              : String(error)
    process.stderr.write(`traitbase cannot listen on ${config.host}:${config.port}: ${why}\n`)
    await store.close()
    process.exit(1)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`traitbase failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
