import { fork } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { SCOPES } from '../src/core/scopes.js'
import { generateApiKey } from '../src/storage/api-keys.js'
import { openStore } from '../src/storage/open-store.js'
import { parseBenchConfig, type BenchConfig } from './lib/bench-config.js'
import { createBenchDatabase } from './lib/bench-database.js'
import { runDirect } from './lib/direct-run.js'
import { summarizeLatencies } from './lib/latency.js'
import type { LoadConfig, LoadResult } from './lib/load-run.js'
import { generatePreloadBatch } from './lib/profile-generator.js'
import { evaluateRun, formatInt, formatRun, type RunReport } from './lib/report.js'
import { startServer } from './lib/server-process.js'

// `npm run bench`: issue 2's upload benchmark. For each preload size: preload a template store,
// copy it twice, drive the real server over HTTP from a separate process on one copy, write the
// same batch sequence straight into the other, and compare.

const ROOT = resolve(import.meta.dirname, '..')
const SERVER_ENTRY = join(ROOT, 'dist/server/main.js')
const OUT_DIR = join(ROOT, '.bench')
/** Users per preload transaction: far above the HTTP limit, it is the store's bulk path. */
const PRELOAD_BATCH = 10_000

const log = (line: string): void => void process.stdout.write(`${line}\n`)

/** What to undo if the run is interrupted: PostgreSQL databases outlive us otherwise. */
const cleanups = new Set<() => Promise<void>>()

function onInterrupt(signal: NodeJS.Signals): void {
  process.stderr.write(`upload-bench: ${signal}, cleaning up …\n`)
  const all = [...cleanups].reverse()
  cleanups.clear()
  void (async () => {
    for (const undo of all) await undo().catch(() => undefined)
    process.exit(130)
  })()
}
process.once('SIGINT', onInterrupt)
process.once('SIGTERM', onInterrupt)

/** Runs `fn` with `undo` registered for interrupts, then undoes it whatever happened. */
async function withCleanup<T>(undo: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  cleanups.add(undo)
  try {
    return await fn()
  } finally {
    cleanups.delete(undo)
    await undo()
  }
}

/** Command-line flags: `--workers N` (server processes, node:cluster) and `--idempotency-keys`. */
interface BenchFlags {
  readonly workers: number
  /** Adds an HTTP run whose requests each carry an Idempotency-Key, compared with the run without. */
  readonly idempotencyKeys: boolean
}

function parseFlags(argv: readonly string[]): BenchFlags | string {
  let workers = 1
  let idempotencyKeys = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--idempotency-keys') idempotencyKeys = true
    else if (arg === '--workers' || arg.startsWith('--workers=')) {
      const raw = arg === '--workers' ? argv[++i] : arg.slice('--workers='.length)
      if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 64) {
        return `--workers takes 1 to 64, got "${raw ?? ''}"`
      }
      workers = Number(raw)
    } else return `unknown argument "${arg}" (flags: --workers N, --idempotency-keys)`
  }
  return { workers, idempotencyKeys }
}

async function main(): Promise<void> {
  const parsed = parseBenchConfig(process.env)
  if (!parsed.ok) {
    process.stderr.write(`upload-bench: ${parsed.error}\n`)
    process.exit(2)
  }
  const config = parsed.value
  const flags = parseFlags(process.argv.slice(2))
  if (typeof flags === 'string') {
    process.stderr.write(`upload-bench: ${flags}\n`)
    process.exit(2)
  }
  if (flags.workers > 1 && config.backend === 'sqlite') {
    process.stderr.write(
      'upload-bench: --workers > 1 needs PostgreSQL (DATABASE_URL=postgres://…); SQLite serves from one process\n',
    )
    process.exit(2)
  }
  if (!existsSync(SERVER_ENTRY)) {
    process.stderr.write(`upload-bench: ${SERVER_ENTRY} is missing; run "npm run build" first\n`)
    process.exit(2)
  }
  mkdirSync(OUT_DIR, { recursive: true })
  // Other work on this machine skews every figure: the load average says how much there was.
  log(
    `upload benchmark: load average ${formatLoad()}, ${config.backend}, ${config.seconds} s per run, ${config.connections} connections, segments ${config.segments ? 'on' : 'off'}, ${flags.workers} server process${flags.workers === 1 ? '' : 'es'}`,
  )
  const reports: RunReport[] = []
  const keyedRuns: KeyedRun[] = []
  for (const preload of config.preloads) {
    const { report, keyed } = await benchOne(config, flags, preload)
    reports.push(report)
    log('')
    for (const line of formatRun(report)) log(line)
    if (keyed !== undefined) {
      keyedRuns.push(keyed)
      for (const line of formatKeyed(report, keyed)) log(line)
    }
    log('')
  }
  const suffix = `${config.segments ? '' : '-nosegments'}${flags.workers > 1 ? `-workers${flags.workers}` : ''}`
  const file = join(OUT_DIR, `upload-${config.backend}${suffix}.json`)
  const summary = {
    date: new Date().toISOString(),
    loadAverageAtEnd: loadavg(),
    config,
    workers: flags.workers,
    runs: reports.map(toJson),
    ...(flags.idempotencyKeys ? { idempotencyKeys: keyedRuns } : {}),
  }
  writeFileSync(file, JSON.stringify(summary, null, 2))
  log(`load average at the end: ${formatLoad()}`)
  log(`results written to ${file}`)
  if (reports.some((r) => r.checks.some((c) => !c.pass))) process.exitCode = 1
}

/** The HTTP run with an Idempotency-Key on every request, beside the run without. */
interface KeyedRun {
  readonly preload: number
  readonly usersPerSecond: number
  readonly latencyMs: ReturnType<typeof summarizeLatencies>
  readonly errors: number
  readonly errorSamples: readonly string[]
  /** users/s with keys ÷ users/s without, both measured in this run. */
  readonly ratio: number
  /** Server CPU per user stored, with and without keys (steadier than users/s on a shared machine). */
  readonly serverCpuMicrosPerUser: number | null
  readonly serverCpuMicrosPerUserWithoutKeys: number | null
}

function formatKeyed(report: RunReport, keyed: KeyedRun): string[] {
  const l = keyed.latencyMs
  return [
    `  with Idempotency-Key: ${formatInt(keyed.usersPerSecond)} users/s, p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, ${keyed.errors} errors`,
    `  ratio to the same HTTP run without keys (${formatInt(Math.round(report.httpUsersPerSecond))} users/s): ${keyed.ratio.toFixed(3)}`,
    `  server CPU per user: ${keyed.serverCpuMicrosPerUser ?? '?'} µs with keys, ${keyed.serverCpuMicrosPerUserWithoutKeys ?? '?'} µs without`,
  ]
}

async function benchOne(
  config: BenchConfig,
  flags: BenchFlags,
  preload: number,
): Promise<{ report: RunReport; keyed: KeyedRun | undefined }> {
  const storeOptions = { changeLog: config.segments }
  const template = await createBenchDatabase(config.postgresUrl, 'template')
  return withCleanup(template.drop, async () => {
    log(`preloading ${formatInt(preload)} users …`)
    const t0 = performance.now()
    const store = await openStore(template.url, storeOptions)
    const project = await store.ensureProject('bench')
    const { secret, hash } = generateApiKey()
    await store.createKey({ projectId: project.id, label: 'bench', scopes: [...SCOPES], hash })
    for (let start = 0; start < preload; start += PRELOAD_BATCH) {
      const batch = generatePreloadBatch(start, Math.min(PRELOAD_BATCH, preload - start), config.seed)
      await store.applyUpload(project.id, batch)
    }
    await store.close()
    const preloadSeconds = (performance.now() - t0) / 1000
    log(`  preloaded in ${preloadSeconds.toFixed(1)} s`)

    const httpDb = await template.copy('http')
    const http = await withCleanup(httpDb.drop, async () => {
      log(`HTTP run: ${config.seconds} s …`)
      return runHttp(config, flags, httpDb.url, secret, preload, false)
    })

    let keyed: KeyedRun | undefined
    if (flags.idempotencyKeys) {
      const keyedDb = await template.copy('keyed')
      const run = await withCleanup(keyedDb.drop, async () => {
        log(`HTTP run with an Idempotency-Key per request: ${config.seconds} s …`)
        return runHttp(config, flags, keyedDb.url, secret, preload, true)
      })
      const withoutKeys = (http.load.users / http.load.elapsedMs) * 1000
      const withKeys = (run.load.users / run.load.elapsedMs) * 1000
      keyed = {
        preload,
        usersPerSecond: Math.round(withKeys),
        latencyMs: summarizeLatencies(run.load.latenciesMs),
        errors: run.load.errors,
        errorSamples: run.load.errorSamples,
        ratio: Number((withKeys / withoutKeys).toFixed(3)),
        serverCpuMicrosPerUser: microsPerUser(run.serverCpu, run.load.users),
        serverCpuMicrosPerUserWithoutKeys: microsPerUser(http.serverCpu, http.load.users),
      }
    }

    const directDb = await template.copy('direct')
    const direct = await withCleanup(directDb.drop, async () => {
      log(`direct run: ${config.seconds} s …`)
      const directStore = await openStore(directDb.url, storeOptions)
      return withCleanup(
        () => directStore.close(),
        () =>
          runDirect(directStore, project.id, {
            seconds: config.seconds,
            concurrency: config.connections,
            preload,
            seed: config.seed,
          }),
      )
    })

    const { load, peakRss, serverCpu } = http
    const report = evaluateRun({
      backend: config.backend,
      preload,
      connections: config.connections,
      segments: config.segments,
      preloadSeconds,
      http: {
        requests: load.requests,
        users: load.users,
        errors: load.errors,
        errorSamples: load.errorSamples,
        elapsedMs: load.elapsedMs,
        latency: summarizeLatencies(load.latenciesMs),
        serverPeakRssBytes: peakRss,
        serverCpuSeconds: serverCpu,
        loadCpuSeconds: load.cpuSeconds,
      },
      direct,
    })
    return { report, keyed }
  })
}

/** One timed HTTP run against a server (of `flags.workers` processes) on `databaseUrl`. */
async function runHttp(
  config: BenchConfig,
  flags: BenchFlags,
  databaseUrl: string,
  apiKey: string,
  preload: number,
  idempotencyKeys: boolean,
) {
  const server = await startServer({
    entry: SERVER_ENTRY,
    args: flags.workers > 1 ? ['--workers', String(flags.workers)] : [],
    env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', SEGMENTS: config.segments ? 'on' : 'off' },
    logFile: join(OUT_DIR, `server-${config.backend}-${preload}${idempotencyKeys ? '-keyed' : ''}.log`),
    readyTimeoutMs: 300_000,
  })
  return withCleanup(server.stop, async () => {
    const cpuBefore = server.cpuSeconds()
    const load = await runLoadProcess({
      baseUrl: server.baseUrl,
      apiKey,
      seconds: config.seconds,
      connections: config.connections,
      preload,
      seed: config.seed,
      idempotencyKeys,
    })
    return { load, peakRss: server.peakRssBytes(), serverCpu: minus(server.cpuSeconds(), cpuBefore) }
  })
}

/** Runs the load generator in its own process, so it never shares an event loop with the server or us. */
function runLoadProcess(config: LoadConfig): Promise<LoadResult> {
  return new Promise((resolvePromise, reject) => {
    const child = fork(join(import.meta.dirname, 'lib/load-generator.ts'), { stdio: 'inherit' })
    let result: LoadResult | undefined
    child.once('message', (message) => (result = message as LoadResult))
    child.once('error', reject)
    child.once('exit', (code) =>
      result === undefined
        ? reject(new Error(`load generator exited with ${code} and no result`))
        : resolvePromise(result),
    )
    child.send(config)
  })
}

function formatLoad(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ')
}

function microsPerUser(seconds: number | null, users: number): number | null {
  return seconds === null || users === 0 ? null : Math.round((seconds * 1e6) / users)
}

function minus(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : a - b
}

function toJson(r: RunReport): unknown {
  return {
    backend: r.backend,
    preload: r.preload,
    preloadSeconds: r.preloadSeconds,
    connections: r.connections,
    segments: r.segments,
    http: {
      usersPerSecond: Math.round(r.httpUsersPerSecond),
      requestsPerSecond: Number(r.httpRequestsPerSecond.toFixed(1)),
      requests: r.http.requests,
      errors: r.http.errors,
      errorSamples: r.http.errorSamples,
      latencyMs: r.http.latency,
      serverPeakRssBytes: r.http.serverPeakRssBytes,
      serverCpuSeconds: r.http.serverCpuSeconds,
      loadGeneratorCpuSeconds: r.http.loadCpuSeconds,
    },
    direct: {
      usersPerSecond: Math.round(r.directUsersPerSecond),
      requests: r.direct.requests,
      cpuSeconds: r.direct.cpuSeconds,
    },
    ratio: Number(r.ratio.toFixed(3)),
    target: r.target,
    checks: r.checks,
  }
}

await main()
