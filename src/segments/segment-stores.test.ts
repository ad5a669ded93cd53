/**
 * The three implementations of a condition — the reference evaluator, the SQL path of each store
 * (countProfiles/scanProfiles) and the in-memory index fed by the store's change feed — must agree,
 * on SQLite and on PostgreSQL, for every operator and nesting.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import { evaluateCondition, parseCondition, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import type { AttributePatch, UploadBatch } from '../core/upload.js'
import { openStore } from '../storage/open-store.js'
import { createTestDatabase, type TestDatabase } from '../storage/postgres/test-database.js'
import type { Store } from '../storage/store.js'
import { SegmentIndex } from './segment-index.js'
import { conditionArbitrary, DATE_BOUNDS, DATE_CONTEXTS, DATE_VALUES, profilesArbitrary } from './test-conditions.js'
import { DATE_UNITS, parseDateValue, type DateWindow } from '../core/date.js'
import { resolveDates, type DateOp } from '../core/segment.js'

type Profiles = Map<string, Record<string, string>>

function batchOf(rows: { userId: string; attributes: AttributePatch }[]): UploadBatch {
  const patches = [...rows].sort((a, b) => compareCodePoints(a.userId, b.userId))
  return { patches, rows: patches.length }
}

/** Applies a patch to the model the reference evaluates, as the spec's update policy says. */
function applyToModel(model: Profiles, rows: { userId: string; attributes: AttributePatch }[]): void {
  for (const { userId, attributes } of rows) {
    const current = model.get(userId) ?? (Object.create(null) as Record<string, string>)
    for (const [k, v] of Object.entries(attributes)) {
      if (v === null) delete current[k]
      else current[k] = v
    }
    model.set(userId, current)
  }
}

function reference(model: Profiles, cond: Condition): string[] {
  return [...model]
    .filter(([id, a]) => evaluateCondition(cond, id, a))
    .map(([id]) => id)
    .sort(compareCodePoints)
}

async function sqlIds(store: Store, projectId: number, where: Condition): Promise<string[]> {
  const ids: string[] = []
  let afterUserId: string | undefined
  for (;;) {
    const page = await store.scanProfiles(projectId, { where, limit: 4, ...(afterUserId ? { afterUserId } : {}) })
    ids.push(...page.map((p) => p.userId))
    if (page.length < 4) return ids
    afterUserId = page[page.length - 1]?.userId
  }
}

async function indexIds(index: SegmentIndex, projectId: number, where: Condition): Promise<string[]> {
  const ids: string[] = []
  let afterUserId: string | undefined
  for (;;) {
    const page = await index.query(projectId, where, 4, afterUserId)
    ids.push(...page.userIds)
    if (page.nextAfter === null) return ids
    afterUserId = page.nextAfter
  }
}

async function checkAll(store: Store, index: SegmentIndex, projectId: number, model: Profiles, cond: Condition) {
  const expected = reference(model, cond)
  const label = JSON.stringify(cond)
  assert.equal(await store.countProfiles(projectId, cond), expected.length, `SQL count ${label}`)
  assert.deepEqual(await sqlIds(store, projectId, cond), expected, `SQL ids ${label}`)
  assert.equal(await index.count(projectId, cond), expected.length, `index count ${label}`)
  assert.deepEqual(await indexIds(index, projectId, cond), expected, `index ids ${label}`)
}

const attrs = (o: Record<string, string | null>): AttributePatch => Object.assign(Object.create(null), o)

/** A fixed fixture touching every operator, the number rule's edges and odd attribute names. */
const FIXTURE: { userId: string; attributes: AttributePatch }[] = [
  { userId: 'u1', attributes: attrs({ plan: 'pro', ltv: '12.5', email: 'ann@example.com', 'a"b.c$': 'odd' }) },
  { userId: 'u2', attributes: attrs({ plan: 'free', ltv: '1e5', email: 'bob@example.org' }) },
  { userId: 'u3', attributes: attrs({ plan: 'free', ltv: '01', email: 'Ann@EXAMPLE.com' }) },
  { userId: 'u4', attributes: attrs({ plan: 'enterprise', ltv: '-3', age: '30' }) },
  { userId: 'u10', attributes: attrs({ ltv: 'n/a', age: ' 7', city: '東京' }) },
  { userId: '😀', attributes: attrs({ plan: 'pro', ltv: '1e99', age: '1E-5', city: '%_\\' }) },
  { userId: '\uE000', attributes: attrs({ ltv: '0', city: 'Osaka' }) },
  { userId: '42', attributes: attrs({}) },
]

const FIXTURE_CONDITIONS: unknown[] = [
  { field: 'plan', op: 'eq', value: 'pro' },
  { field: 'plan', op: 'neq', value: 'pro' },
  { field: 'plan', op: 'in', value: ['free', 'enterprise'] },
  { field: 'plan', op: 'not_in', value: ['free'] },
  { field: 'email', op: 'contains', value: 'ann' },
  { field: 'email', op: 'contains', value: '@example.' },
  { field: 'city', op: 'contains', value: '%_' },
  { field: 'city', op: 'starts_with', value: '東' },
  { field: 'email', op: 'starts_with', value: 'A' },
  { field: 'ltv', op: 'gt', value: 0 },
  { field: 'ltv', op: 'gte', value: 0 },
  { field: 'ltv', op: 'lt', value: 12.5 },
  { field: 'ltv', op: 'lte', value: '12.5' },
  { field: 'age', op: 'gt', value: 0 },
  { field: 'city', op: 'exists' },
  { field: 'city', op: 'not_exists' },
  { field: 'nobody', op: 'not_exists' },
  { field: 'nobody', op: 'neq', value: 'x' },
  { field: 'a"b.c$', op: 'eq', value: 'odd' },
  { field: 'user_id', op: 'gt', value: 5 },
  { field: 'user_id', op: 'starts_with', value: 'u1' },
  { field: 'user_id', op: 'in', value: ['u2', '😀', 'zz'] },
  { field: 'user_id', op: 'not_exists' },
  { not: { field: 'plan', op: 'eq', value: 'pro' } },
  { not: { field: 'plan', op: 'neq', value: 'pro' } },
  {
    all: [
      { field: 'plan', op: 'eq', value: 'free' },
      { field: 'ltv', op: 'gt', value: 100 },
    ],
  },
  {
    any: [
      { field: 'plan', op: 'eq', value: 'pro' },
      { field: 'city', op: 'exists' },
    ],
  },
  { all: [] },
  { any: [] },
  { not: { any: [{ all: [{ field: 'plan', op: 'exists' }, { not: { field: 'ltv', op: 'lt', value: 1 } }] }] } },
]

interface Backend {
  readonly name: string
  open(): Promise<Store | { skip: string }>
  /** A second store instance on the same database, when the backend supports sharing one. */
  openSecond?(): Promise<Store>
  cleanup(): Promise<void>
}

let pgDatabase: TestDatabase | undefined
let citusDatabase: TestDatabase | undefined
const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    open: () => openStore('sqlite::memory:'),
    cleanup: async () => undefined,
  },
  {
    name: 'postgres',
    async open() {
      const db = await createTestDatabase()
      if ('skip' in db) return db
      pgDatabase = db
      return openStore(db.url)
    },
    openSecond: () => openStore((pgDatabase as TestDatabase).url),
    async cleanup() {
      await pgDatabase?.drop()
    },
  },
  {
    name: 'citus',
    async open() {
      const db = await createTestDatabase('citus')
      if ('skip' in db) return db
      citusDatabase = db
      return openStore(db.url)
    },
    openSecond: () => openStore((citusDatabase as TestDatabase).url),
    async cleanup() {
      await citusDatabase?.drop()
    },
  },
]

for (const backend of BACKENDS) {
  describe(`segments on ${backend.name}: reference = SQL = index`, () => {
    let store: Store | undefined
    let skip: string | undefined
    const stores: Store[] = []

    before(async () => {
      const opened = await backend.open()
      if ('skip' in opened) {
        skip = opened.skip
        console.log(`# skipping ${backend.name} segment suite: ${skip}`)
      } else {
        store = opened
        stores.push(opened)
      }
    })
    after(async () => {
      for (const s of stores) await s.close()
      await backend.cleanup()
    })

    test('the fixed fixture: every operator and nesting', async (t) => {
      if (store === undefined) return t.skip(skip)
      const project = await store.ensureProject('fixture')
      await store.applyUpload(project.id, batchOf(FIXTURE))
      const model: Profiles = new Map()
      applyToModel(model, FIXTURE)
      const index = new SegmentIndex(store)
      await index.sync(project.id)
      for (const json of FIXTURE_CONDITIONS) {
        const parsed = parseCondition(json)
        assert.ok(parsed.ok, JSON.stringify(json))
        await checkAll(store, index, project.id, model, parsed.value)
      }
      // Spot checks that pin the semantics, not only the agreement.
      assert.deepEqual(await indexIds(index, project.id, parseOk({ field: 'plan', op: 'neq', value: 'pro' })), [
        'u2',
        'u3',
        'u4',
      ])
      assert.deepEqual(await indexIds(index, project.id, parseOk({ field: 'ltv', op: 'gte', value: 0 })), [
        'u1',
        'u2',
        '\uE000',
        '😀',
      ])
    })

    test('the date rule at its edges: one answer on the reference, SQL and the index (dictionary and packed)', async (t) => {
      if (store === undefined) return t.skip(skip)
      const project = await store.ensureProject('dates')
      const rows = DATE_VALUES.map((v, i) => ({
        userId: `d${String(i).padStart(2, '0')}`,
        attributes: attrs({ d: v }),
      }))
      await store.applyUpload(project.id, batchOf(rows))
      const model: Profiles = new Map()
      applyToModel(model, rows)
      const leaf = (window: DateWindow): Condition => ({ kind: 'date', field: 'd', op: 'after', value: '', window })
      const open = leaf({ from: -Infinity, to: Infinity, fromDay: -Infinity, toDay: Infinity })
      for (const index of [new SegmentIndex(store), new SegmentIndex(store, { dictionaryLimit: 1 })]) {
        await index.sync(project.id)
        // Pinned: exactly these values are dates.
        const dates = await indexIds(index, project.id, open)
        assert.deepEqual(
          dates.map((id) => model.get(id)?.['d']),
          [
            '2025-03-01',
            '2025-02-28',
            '2024-02-29',
            '0000-02-29',
            '2025-03-01T09:30:00Z',
            '2025-03-01T18:30:00+09:00',
            '2025-03-01T09:30Z',
            '2025-03-01T09:30:00.999Z',
            '2025-03-01T09:30:00.9999Z',
            '2025-03-01T09:30:00.5-14:00',
            '2025-03-01T00:00:00+14:00',
            '9999-12-31T23:59:59.999-14:00',
          ],
        )
        await checkAll(store, index, project.id, model, open)
        // Each instant on its own: a one-millisecond window holds exactly the values naming it.
        for (const v of DATE_VALUES) {
          const d = parseDateValue(v)
          if (d === undefined) continue
          const w =
            d.kind === 'instant'
              ? { from: d.ms, to: d.ms + 1, fromDay: 0, toDay: 0 }
              : { from: 0, to: 0, fromDay: d.day, toDay: d.day + 1 }
          await checkAll(store, index, project.id, model, leaf(w))
        }
        assert.deepEqual(
          await indexIds(
            index,
            project.id,
            leaf({ from: Date.UTC(2025, 2, 1, 9, 30), to: Date.UTC(2025, 2, 1, 9, 30) + 1, fromDay: 0, toDay: 0 }),
          ),
          ['d06', 'd07', 'd08'],
        )
        // 9999 ms of .9999 are dropped, not rounded up to the next second.
        assert.deepEqual(
          await indexIds(
            index,
            project.id,
            leaf({
              from: Date.UTC(2025, 2, 1, 9, 30, 0, 999),
              to: Date.UTC(2025, 2, 1, 9, 30, 1),
              fromDay: 0,
              toDay: 0,
            }),
          ),
          ['d09', 'd10'],
        )
        // Every operator, bound, moment and zone.
        for (const ctx of DATE_CONTEXTS) {
          const conds: unknown[] = []
          for (const op of ['before', 'after'] as DateOp[])
            for (const b of DATE_BOUNDS) conds.push({ field: 'd', op, value: b })
          for (const from of DATE_BOUNDS)
            for (const to of DATE_BOUNDS) conds.push({ field: 'd', op: 'between', value: { from, to } })
          for (const op of ['within_last', 'more_than_ago', 'within_next'])
            for (const unit of DATE_UNITS)
              for (const amount of [1, 30]) conds.push({ field: 'd', op, value: { amount, unit } })
          for (const json of conds) await checkAll(store, index, project.id, model, resolveDates(parseOk(json), ctx))
        }
      }
    })

    test('random profiles and conditions, with updates, clears and deletions (property)', async (t) => {
      if (store === undefined) return t.skip(skip)
      const s = store
      let run = 0
      await fc.assert(
        fc.asyncProperty(
          profilesArbitrary,
          profilesArbitrary,
          fc.array(conditionArbitrary, { minLength: 1, maxLength: 4 }),
          fc.uniqueArray(fc.nat(20), { maxLength: 3 }),
          async (first, second, conds, deletions) => {
            const project = await s.ensureProject(`prop-${run}`)
            const model: Profiles = new Map()
            // Every other run packs each attribute once it has two distinct values.
            const index = new SegmentIndex(s, run++ % 2 === 1 ? { dictionaryLimit: 1 } : {})
            await index.sync(project.id)
            if (first.length > 0) await s.applyUpload(project.id, batchOf(first))
            applyToModel(model, first)
            for (const cond of conds.slice(0, 2)) await checkAll(s, index, project.id, model, cond)
            // The second batch sets or clears (null) some attributes of old and new users.
            const rows = second.map((p, i) => ({
              userId: p.userId,
              attributes: attrs({ ...p.attributes, ...(i % 2 === 0 ? { a: null } : {}) }),
            }))
            if (rows.length > 0) await s.applyUpload(project.id, batchOf(rows))
            applyToModel(model, rows)
            const ids = [...model.keys()]
            for (const d of deletions) {
              const id = ids[d % Math.max(1, ids.length)]
              if (id !== undefined && model.delete(id)) assert.equal(await s.deleteProfile(project.id, id), true)
            }
            for (const cond of conds) await checkAll(s, index, project.id, model, cond)
          },
        ),
        { numRuns: backend.name === 'sqlite' ? 150 : 60 },
      )
    })

    test('isolation: a project never sees another project’s users', async (t) => {
      if (store === undefined) return t.skip(skip)
      const a = await store.ensureProject('iso-a')
      const b = await store.ensureProject('iso-b')
      await store.applyUpload(a.id, batchOf([{ userId: 'shared', attributes: attrs({ k: 'a' }) }]))
      await store.applyUpload(
        b.id,
        batchOf([
          { userId: 'shared', attributes: attrs({ k: 'b' }) },
          { userId: 'only-b', attributes: attrs({ k: 'a' }) },
        ]),
      )
      const index = new SegmentIndex(store)
      await index.sync(a.id)
      await index.sync(b.id)
      const everyone: Condition = { kind: 'all', of: [] }
      const kA = parseOk({ field: 'k', op: 'eq', value: 'a' })
      assert.deepEqual(await indexIds(index, a.id, everyone), ['shared'])
      assert.deepEqual(await indexIds(index, a.id, kA), ['shared'])
      assert.deepEqual(await indexIds(index, b.id, kA), ['only-b'])
      assert.deepEqual(await sqlIds(store, a.id, everyone), ['shared'])
      assert.equal(await store.countProfiles(a.id, kA), 1)
      assert.deepEqual(
        (await index.catalog(a.id)).attributes.map((c) => [c.name, c.users, c.topValues]),
        [['k', 1, [{ value: 'a', users: 1 }]]],
      )
    })

    test('index pagination visits every user matching throughout exactly once while another writer uploads', async (t) => {
      if (store === undefined) return t.skip(skip)
      const project = await store.ensureProject('paging')
      const base = Array.from({ length: 300 }, (_, i) => ({
        userId: `u${String(i).padStart(4, '0')}`,
        attributes: attrs({ k: 'v' }),
      }))
      await store.applyUpload(project.id, batchOf(base))
      const index = new SegmentIndex(store)
      await index.sync(project.id)
      const where = parseOk({ field: 'k', op: 'eq', value: 'v' })
      let writing = true
      let n = 0
      const writer = (async () => {
        while (writing) {
          await (store as Store).applyUpload(
            project.id,
            batchOf([
              { userId: `u${String(n % 300).padStart(4, '0')}z`, attributes: attrs({ k: 'v' }) },
              { userId: `a${n}`, attributes: attrs({ k: 'v' }) },
              { userId: `w${n}`, attributes: attrs({ k: 'not' }) },
            ]),
          )
          n++
          await new Promise((r) => setImmediate(r))
        }
      })()
      const seen: string[] = []
      let afterUserId: string | undefined
      for (;;) {
        const page = await index.query(project.id, where, 13, afterUserId)
        seen.push(...page.userIds)
        if (page.nextAfter === null) break
        afterUserId = page.nextAfter
      }
      writing = false
      await writer
      assert.ok(n > 0, 'the writer ran during the walk')
      assert.equal(new Set(seen).size, seen.length, 'no user twice')
      assert.deepEqual([...seen].sort(compareCodePoints), seen, 'ascending user_id')
      for (const u of base) assert.ok(seen.includes(u.userId), `${u.userId} visited`)
      assert.ok(!seen.some((id) => id.startsWith('w')))
    })

    test('an index that follows the feed survives pruning without a reload; one that does not reloads', async (t) => {
      if (store === undefined) return t.skip(skip)
      const s = store
      const project = await s.ensureProject('follow')
      await s.applyUpload(project.id, batchOf([{ userId: 'u0', attributes: attrs({ k: 'v' }) }]))
      let resets = 0
      // The store, with every reset page of its feed counted.
      const counting = {
        countProfiles: s.countProfiles.bind(s),
        scanProfiles: s.scanProfiles.bind(s),
        readChanges(projectId: number, token: string | null) {
          const feed = s.readChanges(projectId, token)
          const pages = (async function* () {
            for await (const page of feed.pages) {
              if (page.reset) resets++
              yield page
            }
          })()
          return { pages, token: () => feed.token() }
        },
      }
      const followed = new SegmentIndex(counting, { followIntervalMs: 0 })
      const lazy = new SegmentIndex(counting, { followIntervalMs: 0 })
      await followed.sync(project.id)
      await lazy.sync(project.id)
      assert.equal(resets, 2, 'one initial load each')
      await s.applyUpload(project.id, batchOf([{ userId: 'u1', attributes: attrs({ k: 'v' }) }]))
      await followed.maintain()
      assert.ok((await s.pruneChanges(new Date(Date.now() + 60_000))) >= 1, 'the change was pruned')
      const where = parseOk({ field: 'k', op: 'eq', value: 'v' })
      assert.equal(await followed.count(project.id, where), 2)
      assert.equal(resets, 2, 'the followed index had read the change before it was pruned')
      assert.equal(await lazy.count(project.id, where), 2)
      assert.equal(resets, 3, 'the other index was behind the prune horizon and reloaded')
    })

    if (backend.openSecond !== undefined) {
      test('two store instances on one database: the reader’s index sees the writer’s uploads', async (t) => {
        if (store === undefined || backend.openSecond === undefined) return t.skip(skip)
        const reader = await backend.openSecond()
        stores.push(reader)
        const project = await store.ensureProject('two-processes')
        const index = new SegmentIndex(reader)
        await index.sync(project.id)
        const where = parseOk({ field: 'plan', op: 'eq', value: 'pro' })
        assert.equal(await index.count(project.id, where), 0)
        for (let i = 0; i < 5; i++) {
          await store.applyUpload(project.id, batchOf([{ userId: `u${i}`, attributes: attrs({ plan: 'pro' }) }]))
          assert.equal(await index.count(project.id, where), i + 1)
        }
        await store.applyUpload(project.id, batchOf([{ userId: 'u0', attributes: attrs({ plan: null }) }]))
        assert.equal(await store.deleteProfile(project.id, 'u1'), true)
        assert.deepEqual(await indexIds(index, project.id, where), ['u2', 'u3', 'u4'])
      })
    }
  })
}

function parseOk(json: unknown): Condition {
  const r = parseCondition(json)
  assert.ok(r.ok, JSON.stringify(json))
  return r.value
}
