import { fork } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { SCOPES } from '../src/core/scopes.js'
import { generateApiKey } from '../src/storage/api-keys.js'
import { openStore } from '../src/storage/open-store.js'
import type { PostgresStore } from '../src/storage/postgres/postgres-store.js'
import { runFeedProbe } from './lib/feed-probe.js'
import { summarizeLatencies, type LatencySummary } from './lib/latency.js'
import type { LoadConfig, LoadResult } from './lib/load-run.js'
import { generatePreloadBatch } from './lib/profile-generator.js'
import { createScaleDatabase } from './lib/scale-database.js'
import { startServer, type ServerProcess } from './lib/server-process.js'

// `npm run bench:scale`: uploads through 1 and 2 server processes on single PostgreSQL and on the
// 3-node Citus cluster, on an empty project and at 1M users, in one run and one table. Each row:
// total users/s of CONNECTIONS clients spread over the processes, upload p50/p99, and the
// read-your-writes probe of the issue (upload a marker through one process, count markers through
// the other at once: latency and wrong answers). Ratios are to single PostgreSQL, 1 process, same
// preload, of this same run.

const ROOT = resolve(import.meta.dirname, '..')
const SERVER_ENTRY = join(ROOT, 'dist/server/main.js')
const OUT_DIR = join(ROOT, '.bench')
const PRELOAD_BATCH = 10_000

const env = process.env
const seconds = Number(env['BENCH_SECONDS'] ?? 20)
const connections = Number(env['BENCH_CONNECTIONS'] ?? 8)
const preloads = (env['BENCH_PRELOAD'] ?? '0,1000000').split(',').map(Number)
const processCounts = (env['BENCH_PROCESSES'] ?? '1,2').split(',').map(Number)
const backends: { name: string; url: string }[] = [
  { name: 'PostgreSQL', url: env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  { name: 'Citus 3 nodes', url: env['BENCH_CITUS_URL'] ?? 'postgres://postgres@127.0.0.1:5433/postgres' },
].filter((b) => (env['BENCH_BACKENDS'] ?? 'postgres,citus').includes(b.name.startsWith('Citus') ? 'citus' : 'postgres'))
const seed = 1

const log = (line: string): void => void process.stdout.write(`${line}\n`)

interface Row {
  backend: string
  preload: number
  processes: number
  usersPerSecond: number
  upload: LatencySummary
  probe: LatencySummary
  probes: number
  probeFailures: string[]
  uploadErrors: number
  indexLoadSeconds: number
  serverCpuSeconds: number
  /** Citus only: how long isolating the project to its own shard and moving it took. */
  isolateSeconds?: number
}

async function main(): Promise<void> {
  if (!existsSync(SERVER_ENTRY)) throw new Error(`${SERVER_ENTRY} is missing; run "npm run build" first`)
  mkdirSync(OUT_DIR, { recursive: true })
  log(`scale benchmark: load average ${fmtLoad()}, ${seconds} s per run, ${connections} upload clients`)
  const rows: Row[] = []
  for (const preload of preloads) {
    for (const backend of backends) {
      const db = await createScaleDatabase(backend.url)
      try {
        log(`${backend.name}: preloading ${preload.toLocaleString('en')} users …`)
        const t0 = performance.now()
        const store = await openStore(db.url)
        const project = await store.ensureProject('bench')
        const { secret, hash } = generateApiKey()
        await store.createKey({ projectId: project.id, label: 'bench', scopes: [...SCOPES], hash })
        for (let start = 0; start < preload; start += PRELOAD_BATCH) {
          await store.applyUpload(
            project.id,
            generatePreloadBatch(start, Math.min(PRELOAD_BATCH, preload - start), seed),
          )
        }
        await store.close()
        log(`  preloaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
        for (const processes of processCounts) {
          const row = await runOne(backend.name, db.url, secret, preload, processes)
          rows.push(row)
          log(
            `  ${processes} process(es): ${Math.round(row.usersPerSecond)} users/s, probe p50 ${row.probe.p50.toFixed(0)} ms, ${row.probeFailures.length} wrong`,
          )
        }
        if (db.citus && env['BENCH_ISOLATE'] !== 'off') {
          // The large-tenant path: the project gets a shard group of its own, moved to the other
          // worker; then the largest process count runs again on it.
          const admin = (await openStore(db.url)) as PostgresStore
          const t1 = performance.now()
          const moved = await admin.isolateProject(project.id)
          const isolateSeconds = (performance.now() - t1) / 1000
          await admin.close()
          log(
            `  isolated to shard ${moved.shardId} on :${moved.nodePort} (from :${moved.movedFrom}) in ${isolateSeconds.toFixed(1)} s`,
          )
          const processes = Math.max(...processCounts)
          const row = await runOne(`${backend.name}, project isolated`, db.url, secret, preload, processes)
          rows.push({ ...row, isolateSeconds })
          log(
            `  ${processes} process(es), isolated: ${Math.round(row.usersPerSecond)} users/s, ${row.probeFailures.length} wrong`,
          )
        }
      } finally {
        await db.drop()
      }
    }
  }
  log('')
  for (const line of table(rows)) log(line)
  const file = join(OUT_DIR, 'scale.json')
  writeFileSync(
    file,
    JSON.stringify(
      { date: new Date().toISOString(), seconds, connections, loadAverageAtEnd: loadavg(), rows },
      null,
      2,
    ),
  )
  log(`\nload average at the end: ${fmtLoad()}; results written to ${file}`)
  if (rows.some((r) => r.probeFailures.length > 0 || r.uploadErrors > 0)) process.exitCode = 1
}

async function runOne(backend: string, url: string, apiKey: string, preload: number, processes: number): Promise<Row> {
  const servers: ServerProcess[] = []
  try {
    for (let i = 0; i < Math.max(processes, 1); i++) {
      servers.push(
        await startServer({
          entry: SERVER_ENTRY,
          env: { DATABASE_URL: url, LOG_LEVEL: 'warn' },
          logFile: join(OUT_DIR, `scale-server-${i}.log`),
          readyTimeoutMs: 300_000,
        }),
      )
    }
    // Each process loads the project's segment index before the clock starts (queries meanwhile
    // take the SQL path); the time it took is reported, not measured in the run.
    const t0 = performance.now()
    await Promise.all(servers.map((s) => warm(s.baseUrl, apiKey)))
    const indexLoadSeconds = (performance.now() - t0) / 1000
    const cpuBefore = servers.map((s) => s.cpuSeconds() ?? 0)
    // With one process the probe uploads and queries through the same one.
    const probeServers = servers.map((s) => s.baseUrl)
    const outcome = await runFeedProbe({
      servers: probeServers,
      apiKey,
      connections,
      seconds,
      preload,
      seed,
      probeTimeoutMs: 60_000,
      runLoad: runLoadProcess,
    })
    const cpu = servers.reduce((sum, s, i) => sum + ((s.cpuSeconds() ?? 0) - (cpuBefore[i] ?? 0)), 0)
    const elapsed = Math.max(...outcome.load.map((l) => l.elapsedMs)) / 1000
    return {
      backend,
      preload,
      processes,
      usersPerSecond: outcome.load.reduce((sum, l) => sum + l.users, 0) / elapsed,
      upload: summarizeLatencies(outcome.load.flatMap((l) => l.latenciesMs)),
      probe: summarizeLatencies(outcome.queryMs),
      probes: outcome.probes,
      probeFailures: outcome.failures,
      uploadErrors: outcome.load.reduce((sum, l) => sum + l.errors, 0),
      indexLoadSeconds,
      serverCpuSeconds: cpu,
    }
  } finally {
    for (const s of servers) await s.stop()
  }
}

/** Asks for a segment until two answers in a row come back fast: the index is loaded. */
async function warm(baseUrl: string, apiKey: string): Promise<void> {
  const deadline = performance.now() + 600_000
  let fast = 0
  while (fast < 2 && performance.now() < deadline) {
    const t0 = performance.now()
    const res = await fetch(`${baseUrl}/v1/user/segments/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ where: { field: 'plan', op: 'eq', value: 'pro' }, limit: 1 }),
    })
    await res.text()
    fast = performance.now() - t0 < 250 ? fast + 1 : 0
    if (fast < 2) await new Promise((r) => setTimeout(r, 500))
  }
}

function runLoadProcess(config: LoadConfig): Promise<LoadResult> {
  return new Promise((resolvePromise, reject) => {
    const child = fork(join(import.meta.dirname, 'lib/load-generator.ts'), { stdio: 'inherit' })
    let result: LoadResult | undefined
    child.once('message', (message) => (result = message as LoadResult))
    child.once('error', reject)
    child.once('exit', (code) =>
      result === undefined ? reject(new Error(`load generator exited with ${code}`)) : resolvePromise(result),
    )
    child.send(config)
  })
}

export function table(rows: readonly Row[]): string[] {
  const base = (r: Row) => rows.find((b) => b.backend === 'PostgreSQL' && b.processes === 1 && b.preload === r.preload)
  const lines = [
    '| backend | users before | processes | users/s | × PG 1 proc | upload p50 / p99 ms | probe p50 / p99 / max ms | probes (wrong) | upload errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    const b = base(r)
    const ratio = b === undefined ? '–' : `${(r.usersPerSecond / b.usersPerSecond).toFixed(2)}×`
    lines.push(
      `| ${r.backend} | ${r.preload.toLocaleString('en')} | ${r.processes} | ${Math.round(r.usersPerSecond).toLocaleString('en')} | ${ratio} | ${r.upload.p50.toFixed(0)} / ${r.upload.p99.toFixed(0)} | ${r.probe.p50.toFixed(0)} / ${r.probe.p99.toFixed(0)} / ${r.probe.max.toFixed(0)} | ${r.probes} (${r.probeFailures.length}) | ${r.uploadErrors} |`,
    )
  }
  return lines
}

function fmtLoad(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ')
}

await main()
