import { statSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { parseCondition, resolveDates, type Condition, type DateContext } from '../src/core/segment.js'
import type { UploadBatch } from '../src/core/upload.js'
import { scramble32 } from './lib/random.js'
import { SegmentIndex } from '../src/segments/segment-index.js'
import { openStore } from '../src/storage/open-store.js'
import type { Store } from '../src/storage/store.js'
import { createBenchDatabase, type BenchDatabase } from './lib/bench-database.js'
import { generatePreloadBatch } from './lib/profile-generator.js'

// `npm run bench:segments`: issue 3's segment benchmark. Loads BENCH_USERS (default 1,000,000)
// users × 11 attributes (the generator's 10, whose signup_date is a bare date with ~2,900 distinct
// values, plus last_seen: a date-time with milliseconds and a UTC or +09:00 offset, nearly unique,
// so it is a packed column) through the store's bulk path into a fresh database per backend, builds the
// in-memory segment index from the change feed, then times count + first page (median of 5 warm
// runs) for the issue's 7 queries and the attribute catalog. Backends: BENCH_BACKENDS (default
// "sqlite", plus "postgres" when DATABASE_URL is a postgres:// URL).

const PRELOAD_BATCH = 10_000
const RUNS = 5
const SEED = 42

const QUERIES: { name: string; target: number; where: unknown }[] = [
  { name: 'eq', target: 150, where: { field: 'plan', op: 'eq', value: 'pro' } },
  {
    name: 'all of 2 eq',
    target: 150,
    where: {
      all: [
        { field: 'plan', op: 'eq', value: 'free' },
        { field: 'country', op: 'eq', value: 'JP' },
      ],
    },
  },
  {
    name: 'numeric range',
    target: 150,
    where: {
      all: [
        { field: 'ltv', op: 'gte', value: 100 },
        { field: 'ltv', op: 'lt', value: 500 },
      ],
    },
  },
  { name: 'contains (email)', target: 1000, where: { field: 'email', op: 'contains', value: '7f3' } },
  {
    name: 'any of 2 eq',
    target: 150,
    where: {
      any: [
        { field: 'country', op: 'eq', value: 'DE' },
        { field: 'country', op: 'eq', value: 'FR' },
      ],
    },
  },
  { name: 'not_exists', target: 150, where: { field: 'city', op: 'not_exists' } },
  { name: 'in of 3', target: 150, where: { field: 'language', op: 'in', value: ['ja', 'zh', 'ko'] } },
  // Issue 10: every date operator, on the dictionary column (signup_date) and the packed one (last_seen).
  {
    name: 'signup between',
    target: 150,
    where: { field: 'signup_date', op: 'between', value: { from: '2024-01-01', to: '2025-01-01' } },
  },
  {
    name: 'signup last 90 days',
    target: 150,
    where: { field: 'signup_date', op: 'within_last', value: { amount: 90, unit: 'days' } },
  },
  {
    name: 'signup next 3 months',
    target: 150,
    where: { field: 'signup_date', op: 'within_next', value: { amount: 3, unit: 'months' } },
  },
  { name: 'signup after', target: 150, where: { field: 'signup_date', op: 'after', value: '2026-01-01' } },
  {
    name: 'seen before',
    target: 150,
    where: { field: 'last_seen', op: 'before', value: '2026-03-01T00:00:00+09:00' },
  },
  {
    name: 'seen > 2 weeks ago',
    target: 150,
    where: { field: 'last_seen', op: 'more_than_ago', value: { amount: 2, unit: 'weeks' } },
  },
]

/** The moment and zone the date queries are resolved for: fixed, so counts repeat from run to run. */
const DATE_CONTEXT: DateContext = { now: Date.UTC(2026, 5, 1, 12), timeZone: 'Asia/Tokyo' }
const LAST_SEEN_START = Date.UTC(2025, 5, 1)
const LAST_SEEN_SPAN = 365 * 86_400_000

/** Adds last_seen to every user of a preload batch: a year of millisecond instants, half written in +09:00. */
function withLastSeen(batch: UploadBatch): UploadBatch {
  for (const patch of batch.patches) {
    const h = scramble32(Number.parseInt(patch.userId.slice(1), 16) ^ 0x5bd1e995)
    const at = LAST_SEEN_START + Math.floor((h / 2 ** 32) * LAST_SEEN_SPAN)
    const iso = new Date(h % 2 === 0 ? at : at + 9 * 3_600_000).toISOString()
    ;(patch.attributes as Record<string, string | null>)['last_seen'] = h % 2 === 0 ? iso : `${iso.slice(0, 23)}+09:00`
  }
  return batch
}

const log = (line: string): void => void process.stdout.write(`${line}\n`)
const ms = (n: number): string => `${n.toFixed(1)} ms`
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

function condition(json: unknown): Condition {
  const parsed = parseCondition(json)
  if (!parsed.ok) throw new Error(`bad benchmark query ${JSON.stringify(json)}`)
  return resolveDates(parsed.value, DATE_CONTEXT)
}

function heapBytes(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

async function databaseBytes(db: BenchDatabase): Promise<number> {
  if (db.url.startsWith('sqlite:')) {
    const file = db.url.slice('sqlite:'.length)
    let n = 0
    for (const ext of ['', '-wal']) {
      try {
        n += statSync(file + ext).size
      } catch {
        // No WAL file at the moment.
      }
    }
    return n
  }
  const client = new pg.Client(db.url)
  await client.connect()
  try {
    const { rows } = await client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')
    return Number(rows[0]?.size)
  } finally {
    await client.end()
  }
}

async function benchBackend(backend: 'sqlite' | 'postgres', users: number, postgresUrl: string | undefined) {
  log(`\n== ${backend}: ${users.toLocaleString('en-US')} users × 11 attributes`)
  const db = await createBenchDatabase(backend === 'postgres' ? postgresUrl : undefined, 'segments')
  let store: Store | undefined
  try {
    store = await openStore(db.url)
    const project = await store.ensureProject('bench')
    let t = performance.now()
    for (let start = 0; start < users; start += PRELOAD_BATCH) {
      await store.applyUpload(
        project.id,
        withLastSeen(generatePreloadBatch(start, Math.min(PRELOAD_BATCH, users - start), SEED)),
      )
    }
    const loadS = (performance.now() - t) / 1000
    log(
      `load (applyUpload, ${PRELOAD_BATCH} users per batch): ${loadS.toFixed(1)} s, ${Math.round(users / loadS)} users/s`,
    )
    log(`database size: ${mb(await databaseBytes(db))}`)

    const heapBefore = heapBytes()
    const index = new SegmentIndex(store)
    t = performance.now()
    const projectIndex = await index.sync(project.id)
    const buildMs = performance.now() - t
    const heapAfter = heapBytes()
    const cells = users * 11
    log(
      `index build from the change feed: ${(buildMs / 1000).toFixed(1)} s; memory ${mb(heapAfter - heapBefore)} measured ` +
        `(${((heapAfter - heapBefore) / cells).toFixed(1)} B per user × attribute), ${mb(projectIndex.memoryBytes())} estimated`,
    )
    t = performance.now()
    await index.query(project.id, condition({ all: [] }), 100)
    log(`first page after build (sorts user ids once): ${ms(performance.now() - t)}`)

    log(
      `\n${'query'.padEnd(20)} ${'count'.padStart(9)} ${'median'.padStart(10)} ${'max'.padStart(10)}  target    SQL path (1 run, no index)`,
    )
    let failed = 0
    for (const q of QUERIES) {
      const where = condition(q.where)
      await index.query(project.id, where, 100)
      const times: number[] = []
      let count = 0
      for (let r = 0; r < RUNS; r++) {
        const t0 = performance.now()
        const answer = await index.query(project.id, where, 100)
        times.push(performance.now() - t0)
        count = answer.count
      }
      const t0 = performance.now()
      const sqlCount = await store.countProfiles(project.id, where)
      await store.scanProfiles(project.id, { where, limit: 100 })
      const sqlMs = performance.now() - t0
      const m = median(times)
      const ok = m < q.target && sqlCount === count
      if (!ok) failed++
      log(
        `${q.name.padEnd(20)} ${String(count).padStart(9)} ${ms(m).padStart(10)} ${ms(Math.max(...times)).padStart(10)}  ` +
          `< ${String(q.target).padEnd(5)} ${ok ? 'ok  ' : 'FAIL'}  ${ms(sqlMs)}${sqlCount === count ? '' : ` count MISMATCH ${sqlCount}`}`,
      )
    }
    const times: number[] = []
    let attributes = 0
    for (let r = 0; r < RUNS + 1; r++) {
      const t0 = performance.now()
      attributes = (await index.catalog(project.id)).length
      if (r > 0) times.push(performance.now() - t0)
    }
    const catalogOk = median(times) < 1000
    if (!catalogOk) failed++
    log(
      `${'catalog'.padEnd(20)} ${String(attributes).padStart(9)} ${ms(median(times)).padStart(10)} ${ms(Math.max(...times)).padStart(10)}  < 1000  ${catalogOk ? 'ok' : 'FAIL'}`,
    )
    return failed
  } finally {
    await store?.close()
    await db.drop()
  }
}

async function main(): Promise<void> {
  const users = Number(process.env['BENCH_USERS'] ?? 1_000_000)
  if (!Number.isInteger(users) || users < 1) throw new Error('BENCH_USERS must be a positive integer')
  const databaseUrl = process.env['DATABASE_URL']
  const postgresUrl = databaseUrl?.startsWith('postgres') ? databaseUrl : undefined
  const backends = (process.env['BENCH_BACKENDS'] ?? (postgresUrl ? 'sqlite,postgres' : 'sqlite')).split(',')
  if (backends.includes('postgres') && postgresUrl === undefined) {
    throw new Error('BENCH_BACKENDS includes postgres: set DATABASE_URL=postgres://…')
  }
  if ((globalThis as { gc?: unknown }).gc === undefined) log('(run node with --expose-gc for exact memory figures)')
  let failed = 0
  for (const b of backends) failed += await benchBackend(b === 'postgres' ? 'postgres' : 'sqlite', users, postgresUrl)
  if (failed > 0) process.exitCode = 1
}

main().catch((error: unknown) => {
  process.stderr.write(`segment-bench: ${(error as Error).message}\n`)
  process.exit(2)
})
