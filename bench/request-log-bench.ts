import { mkdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { SCOPES } from '../src/core/scopes.js'
import { generateApiKey } from '../src/storage/api-keys.js'
import { openStore } from '../src/storage/open-store.js'
import { createBenchDatabase } from './lib/bench-database.js'
import { summarizeLatencies } from './lib/latency.js'
import { runLoad } from './lib/load-run.js'
import { startServer } from './lib/server-process.js'

// `npm run bench:request-log`: what the request log (issue 8) costs uploads. The same upload load
// runs against the real server with REQUEST_LOG=off (the baseline) and =on, alternating, each on a
// fresh database, and the ratio of the totals is printed. After each "on" run the log must hold
// one row per request: a log that silently skipped rows would look free.
// Env: BENCH_SECONDS (default 10 per run), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 32),
// DATABASE_URL=postgres://… to measure PostgreSQL (default SQLite).

const ROOT = resolve(import.meta.dirname, '..')
const SERVER_ENTRY = join(ROOT, 'dist/server/main.js')
const OUT_DIR = join(ROOT, '.bench')
const seconds = Number(process.env.BENCH_SECONDS ?? 10)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32)
const url = process.env.DATABASE_URL?.trim() ?? ''
const postgresUrl = /^postgres(ql)?:\/\//.test(url) ? url : undefined

const log = (line: string): void => void process.stdout.write(`${line}\n`)

interface Run {
  readonly users: number
  readonly requests: number
  readonly errors: number
  readonly elapsedMs: number
  readonly p50: number
  readonly p99: number
  /** Server CPU (user + system) during the load, seconds: steadier than throughput on a busy machine. */
  readonly cpuSeconds: number
}

async function runOnce(requestLog: boolean, round: number): Promise<Run> {
  const db = await createBenchDatabase(postgresUrl, `rl${round}${requestLog ? 'on' : 'off'}`)
  try {
    const store = await openStore(db.url)
    const project = await store.ensureProject('bench')
    const { secret, hash } = generateApiKey()
    await store.createKey({ projectId: project.id, label: 'bench', scopes: [...SCOPES], hash })
    await store.close()
    const server = await startServer({
      entry: SERVER_ENTRY,
      env: { DATABASE_URL: db.url, LOG_LEVEL: 'warn', REQUEST_LOG: requestLog ? 'on' : 'off' },
      logFile: join(OUT_DIR, `server-request-log.log`),
    })
    let result
    let cpuSeconds = 0
    const cpuBefore = server.cpuSeconds() ?? 0
    try {
      result = await runLoad({
        baseUrl: server.baseUrl,
        apiKey: secret,
        seconds,
        connections,
        preload: 0,
        seed: round + 1,
      })
      cpuSeconds = (server.cpuSeconds() ?? 0) - cpuBefore
    } finally {
      await server.stop()
    }
    if (requestLog) {
      const check = await openStore(db.url)
      const rows = (await check.listRequestLog(project.id, { limit: 1 }))[0]?.id ?? 0
      const all = result.requests + result.errors
      await check.close()
      // Ids are dense in a fresh database: the newest id is the number of rows written.
      if (rows < all) throw new Error(`request log holds ${rows} rows for ${all} requests`)
    }
    const latency = summarizeLatencies(Float64Array.from(result.latenciesMs).sort())
    return {
      users: result.users,
      requests: result.requests,
      errors: result.errors,
      elapsedMs: result.elapsedMs,
      p50: latency.p50,
      p99: latency.p99,
      cpuSeconds,
    }
  } finally {
    await db.drop()
  }
}

async function main(): Promise<void> {
  mkdirSync(OUT_DIR, { recursive: true })
  log(
    `request-log benchmark: ${postgresUrl === undefined ? 'sqlite' : 'postgres'}, ${rounds} rounds × ${seconds} s per setting, ${connections} connections, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')}`,
  )
  const totals = { off: { users: 0, ms: 0, cpu: 0 }, on: { users: 0, ms: 0, cpu: 0 } }
  for (let round = 0; round < rounds; round++) {
    // Alternate which setting goes first, so a drift in machine load does not favour one.
    const order = round % 2 === 0 ? [false, true] : [true, false]
    for (const on of order) {
      const r = await runOnce(on, round)
      const rate = (r.users / r.elapsedMs) * 1000
      const t = on ? totals.on : totals.off
      t.users += r.users
      t.ms += r.elapsedMs
      t.cpu += r.cpuSeconds
      log(
        `  round ${round + 1} REQUEST_LOG=${on ? 'on ' : 'off'}: ${Math.round(rate).toLocaleString('en-US')} users/s, ${r.requests} requests, ${r.errors} errors, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, server CPU ${((r.cpuSeconds / r.users) * 1e6).toFixed(1)} µs/user`,
      )
    }
  }
  const off = (totals.off.users / totals.off.ms) * 1000
  const on = (totals.on.users / totals.on.ms) * 1000
  log(`baseline (REQUEST_LOG=off): ${Math.round(off).toLocaleString('en-US')} users/s`)
  log(`with the request log:       ${Math.round(on).toLocaleString('en-US')} users/s`)
  log(`ratio on/off: ${(on / off).toFixed(3)} (cost ${((1 - on / off) * 100).toFixed(1)} %; the issue allows 5 %)`)
  const cpuOff = totals.off.cpu / totals.off.users
  const cpuOn = totals.on.cpu / totals.on.users
  log(
    `server CPU per user: off ${(cpuOff * 1e6).toFixed(1)} µs, on ${(cpuOn * 1e6).toFixed(1)} µs, ratio on/off ${(cpuOn / cpuOff).toFixed(3)} (cost ${((cpuOn / cpuOff - 1) * 100).toFixed(1)} %)`,
  )
  log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')}`,
  )
}

main().catch((error: unknown) => {
  process.stderr.write(`request-log-bench: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
