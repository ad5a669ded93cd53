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

async function main(): Promise<void> {
  const parsed = parseBenchConfig(process.env)
  if (!parsed.ok) {
    process.stderr.write(`upload-bench: ${parsed.error}\n`)
    process.exit(2)
  }
  const config = parsed.value
  if (!existsSync(SERVER_ENTRY)) {
    process.stderr.write(`upload-bench: ${SERVER_ENTRY} is missing; run "npm run build" first\n`)
    process.exit(2)
  }
  mkdirSync(OUT_DIR, { recursive: true })
  // Other work on this machine skews every figure: the load average says how much there was.
  log(
    `upload benchmark: load average ${formatLoad()}, ${config.backend}, ${config.seconds} s per run, ${config.connections} connections, segments ${config.segments ? 'on' : 'off'}`,
  )
  const reports: RunReport[] = []
  for (const preload of config.preloads) {
    const report = await benchOne(config, preload)
    reports.push(report)
    log('')
    for (const line of formatRun(report)) log(line)
    log('')
  }
  const file = join(OUT_DIR, `upload-${config.backend}${config.segments ? '' : '-nosegments'}.json`)
  const summary = { date: new Date().toISOString(), loadAverageAtEnd: loadavg(), config, runs: reports.map(toJson) }
  writeFileSync(file, JSON.stringify(summary, null, 2))
  log(`load average at the end: ${formatLoad()}`)
  log(`results written to ${file}`)
  if (reports.some((r) => r.checks.some((c) => !c.pass))) process.exitCode = 1
}

async function benchOne(config: BenchConfig, preload: number): Promise<RunReport> {
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
      const server = await startServer({
        entry: SERVER_ENTRY,
        env: { DATABASE_URL: httpDb.url, LOG_LEVEL: 'warn', SEGMENTS: config.segments ? 'on' : 'off' },
        logFile: join(OUT_DIR, `server-${config.backend}-${preload}.log`),
        readyTimeoutMs: 300_000,
      })
      return withCleanup(server.stop, async () => {
        const cpuBefore = server.cpuSeconds()
        const load = await runLoadProcess({
          baseUrl: server.baseUrl,
          apiKey: secret,
          seconds: config.seconds,
          connections: config.connections,
          preload,
          seed: config.seed,
        })
        return { load, peakRss: server.peakRssBytes(), serverCpu: minus(server.cpuSeconds(), cpuBefore) }
      })
    })

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
    return evaluateRun({
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
