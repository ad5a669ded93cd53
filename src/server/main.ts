import { readFileSync } from 'node:fs'
import { openStore } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'

/**
 * The server process: the only place that reads `process.env`, listens and handles signals.
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the database, exit 0;
 * after `SHUTDOWN_TIMEOUT_MS` it exits 1 anyway.
 */
async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(78) // EX_CONFIG (sysexits.h): configuration error
  }

  let tls: { key: Buffer; cert: Buffer } | undefined
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    try {
      tls = { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
    } catch (error) {
      process.stderr.write(`Cannot read TLS_CERT/TLS_KEY: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exit(78)
    }
  }

  // openStore runs the migrations (safe when several servers start at once).
  const store: Store = await openStore(config.databaseUrl, { changeLog: config.segments })
  const app = buildApp({ store, config, ...(tls === undefined ? {} : { tls }) })

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
