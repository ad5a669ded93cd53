import { performance } from 'node:perf_hooks'
import { parseCondition } from '../src/core/segment.js'
import { openStore } from '../src/storage/open-store.js'
import type { Store } from '../src/storage/store.js'
import { createBenchDatabase } from './lib/bench-database.js'
import { generatePreloadBatch } from './lib/profile-generator.js'

// `npm run bench:attribute-indexes` (issue 7): the database path with and without attribute indexes.
// Preloads BENCH_USERS (default 1,000,000) users × 10 attributes per backend (BENCH_BACKENDS, default
// sqlite, plus postgres when DATABASE_URL is postgres://), then in one run: count + first page
// (median of 3) of the five shapes without indexes, uploads for BENCH_UPLOAD_S seconds (default 20;
// 8 concurrent 100-user batches of existing users) without indexes, the index builds, the shapes and
// uploads with the indexes, the shapes again right after those uploads, uploads without the
// indexes again, and the ratio.

const SEED = 42
const INDEXES = [
  ['plan', 'text'],
  ['country', 'text'],
  ['city', 'text'],
  ['language', 'text'],
  ['ltv', 'number'],
] as const
const SHAPES: [string, number, unknown][] = [
  ['eq', 150, { field: 'plan', op: 'eq', value: 'pro' }],
  [
    'all of 2 eq',
    150,
    {
      all: [
        { field: 'plan', op: 'eq', value: 'free' },
        { field: 'country', op: 'eq', value: 'JP' },
      ],
    },
  ],
  [
    'range',
    1000,
    {
      all: [
        { field: 'ltv', op: 'gte', value: 100 },
        { field: 'ltv', op: 'lt', value: 500 },
      ],
    },
  ],
  ['not_exists', 1000, { field: 'city', op: 'not_exists' }],
  ['in of 3', 150, { field: 'language', op: 'in', value: ['ja', 'zh', 'ko'] }],
]
const log = (line: string): void => void process.stdout.write(`${line}\n`)

async function shapes(store: Store, project: number, label: string): Promise<void> {
  for (const [name, target, json] of SHAPES) {
    const parsed = parseCondition(json)
    if (!parsed.ok) throw new Error(`bad shape ${name}`)
    const times: number[] = []
    let count = 0
    for (let r = 0; r < 3; r++) {
      const t = performance.now()
      count = await store.countProfiles(project, parsed.value)
      await store.scanProfiles(project, { where: parsed.value, limit: 101 })
      times.push(performance.now() - t)
    }
    const m = [...times].sort((a, b) => a - b)[1] as number
    log(
      `  ${label.padEnd(16)} ${name.padEnd(12)} ${String(count).padStart(8)}  ${m.toFixed(1).padStart(8)} ms  (target < ${target})`,
    )
  }
}

async function uploads(store: Store, project: number, users: number, seconds: number): Promise<number> {
  const start = performance.now()
  let n = 0
  let k = 7
  while (performance.now() - start < seconds * 1000) {
    const jobs: Promise<unknown>[] = []
    for (let c = 0; c < 8; c++) {
      k = (k * 48271) % 2147483647
      jobs.push(store.applyUpload(project, generatePreloadBatch(k % (users - 100), 100, SEED + n, false)))
    }
    await Promise.all(jobs)
    n += 800
  }
  return n / ((performance.now() - start) / 1000)
}

async function bench(backend: string, url: string | undefined, users: number, seconds: number): Promise<void> {
  log(`\n== ${backend}: ${users.toLocaleString('en-US')} users × 10 attributes`)
  const db = await createBenchDatabase(url, 'attr_indexes')
  const store = await openStore(db.url)
  try {
    const { id } = await store.ensureProject('bench')
    for (let s = 0; s < users; s += 10_000)
      await store.applyUpload(id, generatePreloadBatch(s, Math.min(10_000, users - s), SEED))
    await shapes(store, id, 'no index')
    const before = await uploads(store, id, users, seconds)
    for (const [name, kind] of INDEXES) {
      const t = performance.now()
      await store.createAttributeIndex(id, name, kind)
      log(`  build ${kind} index on ${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`)
    }
    await shapes(store, id, '5 indexes')
    const indexed = await uploads(store, id, users, seconds)
    // Counts right after those uploads: index-only scans visit the heap of pages they changed.
    await shapes(store, id, 'after uploads')
    for (const [name, kind] of INDEXES) await store.dropAttributeIndex(id, name, kind)
    const after = await uploads(store, id, users, seconds)
    log(
      `  uploads: ${Math.round(before)} users/s without, ${Math.round(indexed)} with 5 indexes, ${Math.round(after)} without again; ` +
        `ratio ${(indexed / ((before + after) / 2)).toFixed(2)} (budget ≥ 0.70)`,
    )
  } finally {
    await store.close()
    await db.drop()
  }
}

async function main(): Promise<void> {
  const users = Number(process.env['BENCH_USERS'] ?? 1_000_000)
  const seconds = Number(process.env['BENCH_UPLOAD_S'] ?? 20)
  const url = process.env['DATABASE_URL']
  const postgres = url?.startsWith('postgres') ? url : undefined
  const backends = (process.env['BENCH_BACKENDS'] ?? (postgres ? 'sqlite,postgres' : 'sqlite')).split(',')
  for (const b of backends) await bench(b, b === 'postgres' ? postgres : undefined, users, seconds)
}

main().catch((error: unknown) => {
  process.stderr.write(`attribute-index-bench: ${(error as Error).message}\n`)
  process.exit(2)
})
