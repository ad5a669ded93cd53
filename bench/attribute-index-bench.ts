import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { parseCondition } from '../src/core/segment.js'
import { compareCodePoints } from '../src/core/text.js'
import { parseUploadBody, type AttributePatch, type UploadBatch } from '../src/core/upload.js'
import type { AttributeIndexKind } from '../src/storage/attribute-index.js'
import { openStore } from '../src/storage/open-store.js'
import type { Store } from '../src/storage/store.js'
import { createBenchDatabase } from './lib/bench-database.js'
import { generateLoadBody, generatePreloadBatch, userIdOf } from './lib/profile-generator.js'
import { createRandom } from './lib/random.js'

// `npm run bench:attribute-indexes` (issue 7): the database path with and without attribute indexes.
// Preloads BENCH_USERS (default 1,000,000) users × 10 attributes per backend (BENCH_BACKENDS, default
// sqlite, plus postgres when DATABASE_URL is postgres://), then in one run: count + first page
// (median of 3) of the five shapes without and with the five indexes on the preloaded store; then
// uploads of three mixes (see MIXES) for BENCH_UPLOAD_S seconds each (default 20; 8 concurrent
// 100-user batches) without indexes, with an index on plan alone, and with the five; the shapes
// again right after those uploads (on a bigger store: the load mix adds users); uploads without
// the indexes again; and each ratio to the mean of the two runs without. On PostgreSQL, also the
// uploads with the side table's triggers disabled (what they cost a project without indexes).

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

/**
 * The upload mixes measured: `rewrite`, 100 consecutive existing users with every attribute drawn
 * again (the worst case: every indexed value changes); `load`, the upload bench's requests (50 new
 * users and 50 existing ones rewritten); `partial`, 100 existing users picked at random with only
 * `ltv` sent (a purchase: the indexed text values stay as they are).
 */
const MIXES = ['rewrite', 'load', 'partial'] as const
type Mix = (typeof MIXES)[number]

/** Request counter of the `load` mix across phases, so its new users are always new. */
let loadRequests = 0

function batchFor(mix: Mix, users: number, n: number, k: number): UploadBatch {
  if (mix === 'rewrite') return generatePreloadBatch(k % (users - 100), 100, SEED + n, false)
  if (mix === 'load') {
    const parsed = parseUploadBody(generateLoadBody(loadRequests++, users, SEED))
    if (!parsed.ok) throw new Error('bad load body')
    return parsed.value
  }
  const random = createRandom(k)
  const byId = new Map<string, string>()
  // ltv drawn as the generator draws it (exponential, mean 120), so the range shape keeps its share.
  while (byId.size < 100)
    byId.set(userIdOf(Math.floor(random() * users)), String(Math.round(-Math.log(1 - random()) * 12_000) / 100))
  const patches = [...byId]
    .sort((a, b) => compareCodePoints(a[0], b[0]))
    .map(([userId, ltv]) => ({ userId, attributes: Object.assign(Object.create(null), { ltv }) as AttributePatch }))
  return { patches, rows: patches.length }
}

/** Users per second written by 8 concurrent 100-user batches of `mix` for `seconds`. */
async function uploads(store: Store, project: number, users: number, seconds: number, mix: Mix): Promise<number> {
  const start = performance.now()
  let n = 0
  let k = 7
  while (performance.now() - start < seconds * 1000) {
    const jobs: Promise<unknown>[] = []
    for (let c = 0; c < 8; c++) {
      k = (k * 48271) % 2147483647
      jobs.push(store.applyUpload(project, batchFor(mix, users, n, k)))
    }
    await Promise.all(jobs)
    n += 800
  }
  return n / ((performance.now() - start) / 1000)
}

async function uploadMixes(store: Store, project: number, users: number, seconds: number): Promise<Map<Mix, number>> {
  const rates = new Map<Mix, number>()
  for (const mix of MIXES) rates.set(mix, await uploads(store, project, users, seconds, mix))
  return rates
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
    const build = async (name: string, kind: AttributeIndexKind) => {
      const t = performance.now()
      await store.createAttributeIndex(id, name, kind)
      log(`  build ${kind} index on ${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`)
    }
    // The shapes with the indexes on the preloaded store: the load mix adds users (50 per request).
    for (const [name, kind] of INDEXES) await build(name, kind)
    await shapes(store, id, '5 indexes')
    for (const [name, kind] of INDEXES) await store.dropAttributeIndex(id, name, kind)
    const before = await uploadMixes(store, id, users, seconds)
    await build('plan', 'text')
    const one = await uploadMixes(store, id, users, seconds)
    for (const [name, kind] of INDEXES.slice(1)) await build(name, kind)
    const five = await uploadMixes(store, id, users, seconds)
    // Counts right after those uploads: index-only scans visit the heap of pages they changed.
    await shapes(store, id, 'after uploads')
    for (const [name, kind] of INDEXES) await store.dropAttributeIndex(id, name, kind)
    const after = await uploadMixes(store, id, users, seconds)
    log(
      `  uploads, users/s (8 concurrent 100-user batches, ${seconds} s each); ratio to the mean without indexes (budget ≥ 0.70):`,
    )
    log(
      `    ${'mix'.padEnd(8)} ${'without'.padStart(8)} ${'plan'.padStart(14)} ${'5 indexes'.padStart(14)} ${'without again'.padStart(14)}`,
    )
    for (const mix of MIXES) {
      const base = ((before.get(mix) as number) + (after.get(mix) as number)) / 2
      const cell = (rate: number) => `${Math.round(rate)} (${(rate / base).toFixed(2)})`.padStart(14)
      log(
        `    ${mix.padEnd(8)} ${String(Math.round(before.get(mix) as number)).padStart(8)} ${cell(one.get(mix) as number)} ${cell(five.get(mix) as number)} ${String(Math.round(after.get(mix) as number)).padStart(14)}`,
      )
    }
    if (backend === 'postgres') await triggerCost(db.url, store, id, users, seconds, after)
  } finally {
    await store.close()
    await db.drop()
  }
}

/**
 * PostgreSQL keeps the side table with statement-level triggers on `profiles` that every upload
 * fires, indexed or not: the same mixes with them disabled, against the last run with them (no
 * attribute index anywhere in either).
 */
async function triggerCost(
  url: string,
  store: Store,
  project: number,
  users: number,
  seconds: number,
  withTriggers: Map<Mix, number>,
): Promise<void> {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  try {
    await admin.query('ALTER TABLE profiles DISABLE TRIGGER USER')
    const without = await uploadMixes(store, project, users, seconds)
    await admin.query('ALTER TABLE profiles ENABLE TRIGGER USER')
    log("  no attribute index: uploads with the side table's triggers / with the triggers disabled:")
    for (const mix of MIXES) {
      const on = withTriggers.get(mix) as number
      const off = without.get(mix) as number
      log(`    ${mix.padEnd(8)} ${Math.round(on)} / ${Math.round(off)} users/s (${(on / off).toFixed(2)})`)
    }
  } finally {
    await admin.end()
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
