import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { compareCodePoints } from '../src/core/text.js'
import type { Condition } from '../src/core/segment.js'
import type { UploadBatch } from '../src/core/upload.js'
import { openStore } from '../src/storage/open-store.js'
import type { PostgresStore } from '../src/storage/postgres/postgres-store.js'
import { summarizeLatencies } from './lib/latency.js'
import { generatePreloadBatch } from './lib/profile-generator.js'
import { createScaleDatabase } from './lib/scale-database.js'

// `npm run bench:spread`: one project of BENCH_USERS users on the 3-node Citus cluster, laid out
// normally (one worker) and spread over both workers (`projects spread`, BENCH_BUCKETS buckets), in
// one run: the bulk preload rate, the rate of BENCH_CONNECTIONS clients uploading 100-user requests
// (half new users) through the store for BENCH_SECONDS, and the time of a segment count on the
// database path (the only path of a spread project). Store calls, no HTTP: the cost of the layout.

const env = process.env
const users = Number(env['BENCH_USERS'] ?? 500_000)
const buckets = Number(env['BENCH_BUCKETS'] ?? 8)
const seconds = Number(env['BENCH_SECONDS'] ?? 15)
const connections = Number(env['BENCH_CONNECTIONS'] ?? 8)
const url = env['BENCH_CITUS_URL'] ?? 'postgres://postgres@127.0.0.1:5433/postgres'
const PRELOAD_BATCH = 10_000
const log = (line: string): void => void process.stdout.write(`${line}\n`)

function merge(a: UploadBatch, b: UploadBatch): UploadBatch {
  const patches = [...a.patches, ...b.patches].sort((x, y) => compareCodePoints(x.userId, y.userId))
  return { patches, rows: patches.length }
}

async function timeCount(store: PostgresStore, project: number, where: Condition | undefined): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const t = performance.now()
    await store.countProfiles(project, where)
    times.push(performance.now() - t)
  }
  return times.sort((x, y) => x - y)[2] as number
}

const db = await createScaleDatabase(url)
if (!db.citus) throw new Error(`${url} is not a Citus coordinator`)
log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
)
const rows: string[] = []
try {
  const store = (await openStore(db.url, { poolSize: connections + 2 })) as PostgresStore
  for (const mode of ['one worker', `spread, ${buckets} buckets`]) {
    const project = (await store.ensureProject(mode)).id
    if (mode !== 'one worker') await store.spreadProject(project, buckets)
    let t = performance.now()
    for (let start = 0; start < users; start += PRELOAD_BATCH) {
      await store.applyUpload(project, generatePreloadBatch(start, Math.min(PRELOAD_BATCH, users - start), 1))
    }
    const preloadRate = users / ((performance.now() - t) / 1000)
    log(`${mode}: preloaded ${users} users at ${Math.round(preloadRate)} users/s`)
    let next = users
    let written = 0
    const latencies: number[] = []
    const end = performance.now() + seconds * 1000
    t = performance.now()
    await Promise.all(
      Array.from({ length: connections }, async (_, c) => {
        let k = 0
        while (performance.now() < end) {
          const fresh = generatePreloadBatch(next, 50, 2 + c)
          next += 50
          const old = generatePreloadBatch(Math.floor(((c * 7919 + k++ * 104729) % (users - 50)) / 50) * 50, 50, 3 + c)
          const start = performance.now()
          await store.applyUpload(project, merge(fresh, old))
          latencies.push(performance.now() - start)
          written += 100
        }
      }),
    )
    const rate = written / ((performance.now() - t) / 1000)
    const lat = summarizeLatencies(latencies)
    const all = await timeCount(store, project, undefined)
    const where: Condition = { kind: 'text', field: 'plan', op: 'eq', value: 'pro' }
    const filtered = await timeCount(store, project, where)
    const matching = await store.countProfiles(project, where)
    rows.push(
      `| ${mode} | ${users.toLocaleString('en')} | ${Math.round(preloadRate).toLocaleString('en')} | ${Math.round(rate).toLocaleString('en')} | ${lat.p50.toFixed(0)} / ${lat.p99.toFixed(0)} | ${all.toFixed(0)} | ${filtered.toFixed(0)} (${matching.toLocaleString('en')} users) |`,
    )
    log(rows[rows.length - 1] as string)
  }
  await store.close()
} finally {
  await db.drop()
}
log(
  `load average at end: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
)
log('')
log(
  '| layout | users | bulk preload users/s | upload users/s (100-user requests) | upload p50 / p99 ms | count all ms | count plan = pro ms |',
)
log('|---|---:|---:|---:|---:|---:|---:|')
for (const row of rows) log(row)
