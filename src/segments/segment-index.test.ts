import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { evaluateCondition, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import type { ChangeFeed, ChangePage, Profile, ScanOptions } from '../storage/store.js'
import { countBits, createBitset, setBit } from './bitset.js'
import { ProjectIndex } from './project-index.js'
import { SegmentIndex, type SegmentStore } from './segment-index.js'
import { conditionArbitrary, profilesArbitrary } from './test-conditions.js'

/** A change feed over a Map, shaped like the real stores': log positions, pages of current states. */
class MemoryFeed implements SegmentStore {
  readonly profiles = new Map<string, Record<string, string>>()
  readonly log: string[] = []
  reads = 0
  resets = 0
  sqlCalls = 0
  /** Log positions below this are pruned: a reader whose token is older starts over. */
  prunedBefore = 0
  pageSize = 2
  /** Awaited between pages, to interleave writes with a read in tests. */
  betweenPages: () => Promise<void> = async () => undefined

  put(userId: string, attributes: Record<string, string>): void {
    this.profiles.set(userId, attributes)
    this.log.push(userId)
  }

  delete(userId: string): void {
    this.profiles.delete(userId)
    this.log.push(userId)
  }

  /** The SQL path, modelled with the reference evaluator. */
  async countProfiles(_projectId: number, where?: Condition): Promise<number> {
    this.sqlCalls++
    return reference(this.profiles, where ?? { kind: 'all', of: [] }).length
  }

  async scanProfiles(_projectId: number, options: ScanOptions): Promise<Profile[]> {
    this.sqlCalls++
    const after = options.afterUserId
    return reference(this.profiles, options.where ?? { kind: 'all', of: [] })
      .filter((id) => after === undefined || compareCodePoints(id, after) > 0)
      .slice(0, options.limit)
      .map((userId) => ({ userId, attributes: this.profiles.get(userId) ?? {}, createdAt: '', updatedAt: '' }))
  }

  readChanges(_projectId: number, token: string | null): ChangeFeed {
    this.reads++
    const end = this.log.length
    const start = token === null ? 0 : Number(token)
    const from = start < this.prunedBefore ? null : token
    if (from === null) this.resets++
    return { pages: readPages(this, from, start, end), token: () => String(end) }
  }
}

async function* readPages(
  self: MemoryFeed,
  token: string | null,
  start: number,
  end: number,
): AsyncGenerator<ChangePage> {
  const profileOf = (userId: string): Profile => ({
    userId,
    attributes: self.profiles.get(userId) as Record<string, string>,
    createdAt: '',
    updatedAt: '',
  })
  if (token === null) {
    const ids = [...self.profiles.keys()]
    yield { reset: true, upserts: [], deletedUserIds: [] }
    for (let i = 0; i < ids.length; i += self.pageSize) {
      await self.betweenPages()
      yield { reset: false, upserts: ids.slice(i, i + self.pageSize).map(profileOf), deletedUserIds: [] }
    }
    return
  }
  for (let i = start; i < end; i += self.pageSize) {
    await self.betweenPages()
    const ids = new Set(self.log.slice(i, Math.min(end, i + self.pageSize)))
    const present = [...ids].filter((id) => self.profiles.has(id))
    yield {
      reset: false,
      upserts: present.map(profileOf),
      deletedUserIds: [...ids].filter((id) => !self.profiles.has(id)),
    }
  }
}

const attrs = (o: Record<string, string>): Record<string, string> => Object.assign(Object.create(null), o)
const eq = (field: string, value: string): Condition => ({ kind: 'text', field, op: 'eq', value })

function reference(profiles: Map<string, Record<string, string>>, cond: Condition): string[] {
  return [...profiles]
    .filter(([id, a]) => evaluateCondition(cond, id, a))
    .map(([id]) => id)
    .sort(compareCodePoints)
}

async function walk(index: SegmentIndex, cond: Condition, limit: number): Promise<string[]> {
  const seen: string[] = []
  let after: string | undefined
  for (let guard = 0; guard < 1000; guard++) {
    const page = await index.query(1, cond, limit, after)
    seen.push(...page.userIds)
    if (page.nextAfter === null) return seen
    assert.equal(page.nextAfter, page.userIds[page.userIds.length - 1])
    after = page.nextAfter
  }
  throw new Error('walk did not end')
}

describe('bitset', () => {
  test('countBits counts across words', () => {
    const b = createBitset(100)
    for (const o of [0, 31, 32, 63, 64, 99]) setBit(b, o)
    assert.equal(countBits(b), 6)
    b.fill(0xffffffff)
    assert.equal(countBits(b), 128)
  })
})

describe('ProjectIndex', () => {
  test('upsert replaces the whole profile, remove forgets it, re-creation works', () => {
    const index = new ProjectIndex()
    index.upsert('u1', attrs({ plan: 'pro', city: 'Osaka' }))
    index.upsert('u2', attrs({ plan: 'free' }))
    index.upsert('u1', attrs({ plan: 'free' }))
    assert.equal(index.count(index.evaluate(eq('plan', 'free'))), 2)
    assert.equal(index.count(index.evaluate({ kind: 'presence', field: 'city', op: 'exists' })), 0)
    index.remove('u2')
    assert.equal(index.users, 1)
    assert.equal(index.count(index.evaluate({ kind: 'presence', field: 'plan', op: 'not_exists' })), 0)
    assert.equal(index.count(index.evaluate({ kind: 'not', of: eq('plan', 'x') })), 1)
    index.upsert('u2', attrs({}))
    assert.equal(index.count(index.evaluate({ kind: 'presence', field: 'plan', op: 'not_exists' })), 1)
    assert.deepEqual(index.page(index.evaluate({ kind: 'all', of: [] }), undefined, 10).userIds, ['u1', 'u2'])
  })

  test('grows past its initial capacity', () => {
    const index = new ProjectIndex()
    for (let i = 0; i < 5000; i++) index.upsert(`u${i}`, attrs({ k: String(i % 7) }))
    assert.equal(index.count(index.evaluate(eq('k', '3'))), 714)
    assert.equal(index.count(index.evaluate({ kind: 'numeric', field: 'k', op: 'gte', value: 5 })), 1428)
  })

  test('pages follow code point order, not UTF-16 order', () => {
    const index = new ProjectIndex()
    for (const id of ['\uE000', '😀', 'b', 'a']) index.upsert(id, attrs({}))
    const all = index.evaluate({ kind: 'all', of: [] })
    assert.deepEqual(index.page(all, undefined, 10).userIds, ['a', 'b', '\uE000', '😀'])
    assert.deepEqual(index.page(all, 'b', 1), { userIds: ['\uE000'], more: true })
    assert.deepEqual(index.page(all, '\uE000', 5), { userIds: ['😀'], more: false })
    assert.deepEqual(index.page(all, 'zzz', 5), { userIds: ['\uE000', '😀'], more: false })
  })

  test('catalog: user counts and top values for low-cardinality attributes', () => {
    const index = new ProjectIndex()
    for (let i = 0; i < 30; i++) index.upsert(`u${i}`, attrs({ plan: i % 3 === 0 ? 'pro' : 'free', email: `e${i}` }))
    index.remove('u0')
    const catalog = index.catalog(10, 5).map(({ types: _types, ...rest }) => rest)
    assert.deepEqual(catalog[0], { name: 'email', users: 29, distinctValues: 29, topValues: null })
    assert.deepEqual(catalog[1], {
      name: 'plan',
      users: 29,
      distinctValues: 2,
      topValues: [
        { value: 'free', users: 20 },
        { value: 'pro', users: 9 },
      ],
    })
  })
})

describe('typed catalog', () => {
  test('dictionary and packed columns count the same kinds, numbers and dates', () => {
    const values = ['12', '-3.5', 'true', 'false', '2025-03-01', '2025-03-01T09:30:00+09:00', 'x', '2025-02-30', '1e5']
    const build = (limit?: number) => {
      const index = new ProjectIndex(limit)
      for (let i = 0; i < 40; i++) index.upsert(`u${i}`, attrs({ v: values[i % values.length] as string }))
      index.upsert('u0', attrs({ v: '2030-01-01' }))
      index.remove('u1')
      return index.catalog()[0]?.types
    }
    const dictionary = build()
    const packed = build(1)
    assert.deepEqual({ ...packed }, { ...dictionary })
    assert.deepEqual(
      [dictionary?.strings, dictionary?.numbers, dictionary?.booleans, dictionary?.dates],
      [8, 12, 10, 9],
    )
    assert.deepEqual([dictionary?.numberMin, dictionary?.numberMax], [-3.5, 1e5])
    assert.deepEqual([dictionary?.instantMin, dictionary?.dayMax], [Date.UTC(2025, 2, 1, 0, 30), 21915])
  })
})

describe('SegmentIndex', () => {
  test('matches the reference evaluator on random profiles and conditions, dictionary or packed (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        profilesArbitrary,
        fc.array(conditionArbitrary, { minLength: 1, maxLength: 5 }),
        async (ps, conds) => {
          const feed = new MemoryFeed()
          for (const p of ps) feed.put(p.userId, p.attributes)
          // The default, and every attribute packed once it has two distinct values.
          for (const index of [new SegmentIndex(feed), new SegmentIndex(feed, { dictionaryLimit: 1 })]) {
            for (const cond of conds) {
              const expected = reference(feed.profiles, cond)
              const first = await index.query(1, cond, 3)
              assert.equal(first.count, expected.length)
              assert.deepEqual(await walk(index, cond, 3), expected)
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  test('catches up incrementally: upserts, deletions, and reads only once per query', async () => {
    const feed = new MemoryFeed()
    feed.put('u1', attrs({ plan: 'pro' }))
    const index = new SegmentIndex(feed)
    await index.sync(1)
    assert.equal(await index.count(1, eq('plan', 'pro')), 1)
    feed.put('u2', attrs({ plan: 'pro' }))
    feed.put('u1', attrs({ plan: 'free' }))
    feed.put('u3', attrs({ plan: 'pro' }))
    feed.delete('u3')
    assert.equal(await index.count(1, eq('plan', 'pro')), 1)
    assert.equal(await index.count(1, eq('plan', 'free')), 1)
    assert.equal(feed.reads, 4)
    assert.equal(feed.sqlCalls, 0)
  })

  test('a query arriving during a read waits for a read that started after it (single flight)', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
    const index = new SegmentIndex(feed)
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    feed.betweenPages = () => gate
    const countIn = async (p: Promise<ProjectIndex>) => {
      const project = await p
      return project.count(project.evaluate(eq('k', 'v')))
    }
    const first = countIn(index.sync(1))
    await new Promise((r) => setImmediate(r))
    feed.put('late', attrs({ k: 'v' }))
    const second = countIn(index.sync(1))
    const third = countIn(index.sync(1))
    release()
    assert.equal(await first, 10)
    assert.equal(await second, 11)
    assert.equal(await third, 11)
    assert.equal(feed.reads, 2)
  })

  test('a reset loads into a fresh index: concurrent readers never see half a project (the database answers them)', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
    const index = new SegmentIndex(feed)
    const project = await index.sync(1)
    assert.equal(await index.count(1, eq('k', 'v')), 10)
    assert.equal(project.users, 10)
    // Forget the token so the next read is a reset; read the live index while it loads.
    ;(index as unknown as { projects: Map<number, { token: string | null }> }).projects.get(1)!.token = null
    const counts: number[] = []
    feed.betweenPages = async () => {
      counts.push((await index.query(1, eq('k', 'v'), 100)).userIds.length)
    }
    assert.equal((await index.sync(1)).users, 10)
    assert.equal(await index.count(1, eq('k', 'v')), 10)
    assert.ok(counts.length > 0 && counts.every((n) => n === 10), String(counts))
  })

  test('pagination while another writer uploads visits every user matching throughout exactly once', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 500; i++) feed.put(`u${String(i).padStart(4, '0')}`, attrs({ k: 'v' }))
    const index = new SegmentIndex(feed)
    await index.sync(1)
    const cond = eq('k', 'v')
    const seen: string[] = []
    let after: string | undefined
    let n = 0
    for (;;) {
      const page = await index.query(1, cond, 7, after)
      seen.push(...page.userIds)
      // Interleaved writes: new users on both sides of the cursor, some users leave and come back.
      feed.put(`u${String(n * 13).padStart(4, '0')}x`, attrs({ k: 'v' }))
      feed.put(`a${n}`, attrs({ k: 'v' }))
      feed.put(`u${String((n * 37) % 500).padStart(4, '0')}`, attrs({ k: 'other' }))
      feed.put(`u${String((n * 37) % 500).padStart(4, '0')}`, attrs({ k: 'v' }))
      n++
      if (page.nextAfter === null) break
      after = page.nextAfter
    }
    assert.equal(new Set(seen).size, seen.length, 'no user twice')
    assert.deepEqual([...seen].sort(compareCodePoints), seen, 'in order')
    for (let i = 0; i < 500; i++) assert.ok(seen.includes(`u${String(i).padStart(4, '0')}`))
    assert.equal(feed.sqlCalls, 0, 'answered from memory')
  })

  test('until the first load completes, answers come from the SQL path; then from memory', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: i < 4 ? 'v' : 'w' }))
    const index = new SegmentIndex(feed)
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    feed.betweenPages = () => gate
    assert.equal(index.isLoaded(1), false)
    assert.deepEqual(await index.query(1, eq('k', 'v'), 3), {
      count: 4,
      userIds: ['u0', 'u1', 'u2'],
      nextAfter: 'u2',
      source: 'database',
    })
    assert.deepEqual(await index.query(1, eq('k', 'v'), 3, 'u2'), {
      count: 4,
      userIds: ['u3'],
      nextAfter: null,
      source: 'database',
    })
    assert.deepEqual(await index.countMany(1, [eq('k', 'v'), eq('k', 'w')]), [4, 6])
    assert.equal(feed.reads, 1, 'one background load, started by the first query')
    assert.equal(index.isLoaded(1), false)
    const sql = feed.sqlCalls
    assert.ok(sql >= 6)
    release()
    await index.sync(1)
    assert.equal(index.isLoaded(1), true)
    assert.deepEqual(await index.query(1, eq('k', 'v'), 3), {
      count: 4,
      userIds: ['u0', 'u1', 'u2'],
      nextAfter: 'u2',
      source: 'index',
    })
    assert.equal(feed.sqlCalls, sql)
  })

  test('the background catch-up keeps a loaded project ahead of feed pruning, so it never reloads', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
    const followed = new SegmentIndex(feed, { followIntervalMs: 0 })
    const lazy = new SegmentIndex(feed, { followIntervalMs: 0 })
    await followed.sync(1)
    await lazy.sync(1)
    assert.equal(feed.resets, 2, 'one initial load each')
    for (let i = 10; i < 15; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
    await followed.maintain()
    feed.prunedBefore = feed.log.length
    assert.equal(await followed.count(1, eq('k', 'v')), 15)
    assert.equal(feed.resets, 2, 'the followed index read the changes before they were pruned')
    assert.equal(await lazy.count(1, eq('k', 'v')), 15)
    assert.equal(feed.resets, 3, 'the index that did not follow had to reload')
  })

  test('a project idle for idleMs is dropped from memory; its next query answers from SQL and reloads', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: i < 3 ? 'v' : 'w' }))
    let clock = 1_000_000
    const index = new SegmentIndex(feed, { followIntervalMs: 0, idleMs: 60_000, now: () => clock })
    await index.sync(1)
    await index.sync(2)
    clock += 59_999
    assert.equal(await index.count(2, eq('k', 'v')), 3, 'project 2 is used again')
    await index.maintain()
    assert.equal(index.projectCount, 2, 'not idle long enough yet')
    clock += 1
    await index.maintain()
    assert.equal(index.projectCount, 1, 'project 1 was idle for 60 s and is dropped')
    assert.equal(index.isLoaded(1), false)
    assert.equal(index.isLoaded(2), true)
    const sql = feed.sqlCalls
    assert.equal(await index.count(1, eq('k', 'v')), 3)
    assert.ok(feed.sqlCalls > sql, 'answered from SQL while reloading')
    await index.sync(1)
    assert.equal(index.isLoaded(1), true)
    const kept = new SegmentIndex(feed, { followIntervalMs: 0, idleMs: 0, now: () => clock })
    await kept.sync(1)
    clock += 365 * 86_400_000
    await kept.maintain()
    assert.equal(kept.isLoaded(1), true, 'idleMs 0 keeps every project')
  })

  test('a loaded project whose feed was pruned past it answers from SQL while it reloads, not after', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
    const index = new SegmentIndex(feed, { followIntervalMs: 0 })
    await index.sync(1)
    feed.put('late', attrs({ k: 'v' }))
    feed.prunedBefore = feed.log.length
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    feed.betweenPages = () => gate
    void index.maintain() // starts the reload, which waits at the gate
    await new Promise((r) => setImmediate(r))
    assert.equal(index.isLoaded(1), false)
    const sql = feed.sqlCalls
    assert.deepEqual(await index.query(1, eq('k', 'v'), 2), {
      count: 11,
      userIds: ['late', 'u0'],
      nextAfter: 'u0',
      source: 'database',
    })
    assert.ok(feed.sqlCalls > sql, 'from SQL, without waiting for the reload')
    release()
    await index.sync(1)
    assert.equal(index.isLoaded(1), true)
    assert.equal(await index.count(1, eq('k', 'v')), 11)
  })

  test('the follow timer catches up without queries, and close() stops it', async () => {
    const feed = new MemoryFeed()
    feed.put('u1', attrs({ k: 'v' }))
    const index = new SegmentIndex(feed, { followIntervalMs: 10 })
    await index.sync(1)
    const reads = feed.reads
    await new Promise((r) => setTimeout(r, 100))
    assert.ok(feed.reads > reads, 'the timer read the feed')
    index.close()
    await new Promise((r) => setTimeout(r, 30))
    const after = feed.reads
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(feed.reads, after, 'no reads after close()')
  })

  test('an index whose dead entries outnumber the live ones is rebuilt, answering from SQL meanwhile', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v', seen: '0' }))
    const index = new SegmentIndex(feed, { followIntervalMs: 0, compactMinEntries: 20 })
    const project = await index.sync(1)
    assert.deepEqual(project.entries(), { total: 10 + 1 + 1, dead: 0 })
    // A value that changes on every upload leaves a dead dictionary entry per catch-up that saw it.
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v', seen: `${round}.${i}` }))
      if (round < 3) await index.sync(1)
    }
    feed.delete('u9')
    assert.equal(await index.count(1, eq('k', 'v')), 9, 'the read that finds the waste still answers exactly')
    assert.equal(index.isLoaded(1), false, 'a rebuild is due')
    const sql = feed.sqlCalls
    const resets = feed.resets
    assert.equal(await index.count(1, eq('seen', '3.3')), 1)
    assert.ok(feed.sqlCalls > sql, 'answered from SQL while rebuilding')
    const rebuilt = await index.sync(1)
    assert.equal(feed.resets, resets + 1, 'rebuilt from a fresh read of the store')
    assert.equal(index.isLoaded(1), true)
    assert.deepEqual(rebuilt.entries(), { total: 9 + 1 + 9, dead: 0 })
    assert.equal(await index.count(1, eq('seen', '3.3')), 1)
  })

  test('waste below half, or an index smaller than compactMinEntries, is kept', async () => {
    const feed = new MemoryFeed()
    for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ seen: '0' }))
    const small = new SegmentIndex(feed, { followIntervalMs: 0 })
    await small.sync(1)
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ seen: `${round}.${i}` }))
      await small.sync(1)
    }
    assert.ok(small.isLoaded(1) && (await small.sync(1)).entries().dead > 20, 'mostly dead, but small')
    assert.equal(small.isLoaded(1), true, 'under the default 50,000 entries nothing is rebuilt')
    const halfDead = new SegmentIndex(feed, { followIntervalMs: 0, compactMinEntries: 1 })
    await halfDead.sync(1)
    for (let i = 0; i < 9; i++) feed.put(`u${i}`, attrs({ seen: `4.${i}` }))
    await halfDead.sync(1)
    assert.equal(halfDead.isLoaded(1), true, '9 dead of 29 entries is not worth a rebuild')
  })
})

/** One {@link MemoryFeed} per project id, and every readChanges counted. */
class ProjectFeeds implements SegmentStore {
  readonly feeds = new Map<number, MemoryFeed>()
  /** Full loads asked for (readChanges without a token), per project. */
  readonly loads = new Map<number, number>()
  /** When set, reading the feed fails with this message. */
  failure: string | undefined

  of(projectId: number): MemoryFeed {
    let feed = this.feeds.get(projectId)
    if (feed === undefined) {
      feed = new MemoryFeed()
      feed.pageSize = 100
      this.feeds.set(projectId, feed)
    }
    return feed
  }

  countProfiles(projectId: number, where?: Condition): Promise<number> {
    return this.of(projectId).countProfiles(projectId, where)
  }

  scanProfiles(projectId: number, options: ScanOptions): Promise<Profile[]> {
    return this.of(projectId).scanProfiles(projectId, options)
  }

  readChanges(projectId: number, token: string | null): ChangeFeed {
    if (token === null) this.loads.set(projectId, (this.loads.get(projectId) ?? 0) + 1)
    const failure = this.failure
    if (failure !== undefined) {
      // Fails like a database that went away mid-read: after the reset page.
      const pages = (async function* () {
        yield { reset: true, upserts: [], deletedUserIds: [] }
        throw new Error(failure)
      })()
      return { pages, token: () => '0' }
    }
    return this.of(projectId).readChanges(projectId, token)
  }
}

describe('SegmentIndex memory budget, eviction and failed loads', () => {
  const fill = (feed: MemoryFeed, users: number) => {
    for (let i = 0; i < users; i++) {
      feed.put(
        `u${String(i).padStart(5, '0')}`,
        attrs({ plan: ['free', 'pro', 'team'][i % 3] as string, n: String(i) }),
      )
    }
  }
  const conditions: Condition[] = [
    eq('plan', 'pro'),
    { kind: 'all', of: [eq('plan', 'free'), { kind: 'numeric', field: 'n', op: 'lt', value: 500 }] },
    { kind: 'set', field: 'plan', op: 'in', values: ['team', 'pro'] },
    { kind: 'presence', field: 'missing', op: 'not_exists' },
  ]

  test('a failed load is logged once, counted, not retried per query, and retried after the back-off', async () => {
    const feeds = new ProjectFeeds()
    fill(feeds.of(1), 50)
    feeds.failure = 'database went away'
    let clock = 1_000_000
    const logged: string[] = []
    const index = new SegmentIndex(feeds, {
      followIntervalMs: 0,
      retryAfterMs: 60_000,
      now: () => clock,
      log: (m) => logged.push(m),
    })
    for (let q = 0; q < 20; q++) {
      const answer = await index.query(1, eq('plan', 'pro'), 5)
      assert.equal(answer.count, 17)
      assert.equal(answer.source, 'database')
      await new Promise((r) => setImmediate(r))
    }
    assert.equal(feeds.loads.get(1), 1, 'one load for twenty queries')
    assert.equal(logged.length, 1)
    assert.match(logged[0] as string, /project 1 failed to load: database went away.*next try in 60 s/)
    const stats = index.stats()
    assert.equal(stats.loads, 1)
    assert.equal(stats.loadFailures, 1)
    assert.equal(stats.fallbacks, 20)
    await assert.rejects(index.sync(1), (e: Error) => /could not be loaded \(database went away\)/.test(e.message))
    assert.equal(feeds.loads.get(1), 1, 'the catalog path does not retry during the back-off either')
    // Past the back-off: one new try, which fails again and doubles the wait.
    clock += 60_001
    await index.query(1, eq('plan', 'pro'), 5)
    await new Promise((r) => setImmediate(r))
    assert.equal(feeds.loads.get(1), 2)
    assert.match(logged[1] as string, /next try in 120 s/)
    clock += 60_001
    await index.query(1, eq('plan', 'pro'), 5)
    assert.equal(feeds.loads.get(1), 2, 'still backing off (120 s now)')
    // The database is back: the next try loads, and answers come from memory.
    feeds.failure = undefined
    clock += 60_000
    await index.query(1, eq('plan', 'pro'), 5)
    await index.sync(1)
    assert.equal(index.isLoaded(1), true)
    assert.equal((await index.query(1, eq('plan', 'pro'), 5)).source, 'index')
    assert.equal(index.stats().loadFailures, 2)
  })

  test('a budget too small for a project: exact answers from the database path, one load per back-off', async () => {
    const feeds = new ProjectFeeds()
    const feed = feeds.of(1)
    fill(feed, 1000)
    const logged: string[] = []
    const index = new SegmentIndex(feeds, { followIntervalMs: 0, memoryBudgetBytes: 1, log: (m) => logged.push(m) })
    for (let round = 0; round < 3; round++) {
      for (const where of conditions) {
        const expected = reference(feed.profiles, where)
        const answer = await index.query(1, where, 1000)
        assert.equal(answer.count, expected.length)
        assert.deepEqual(answer.userIds, expected)
        assert.equal(await index.count(1, where), expected.length)
        await new Promise((r) => setImmediate(r))
      }
    }
    assert.equal(index.isLoaded(1), false)
    assert.equal(feeds.loads.get(1), 1)
    const stats = index.stats()
    assert.equal(stats.overBudget, 1)
    assert.equal(stats.readyBytes + stats.loadingBytes, 0, 'the abandoned load was released')
    assert.equal(logged.length, 1)
    assert.match(logged[0] as string, /not loaded: its index needs more than the memory budget/)
  })

  test('the least recently queried project is evicted to make room', async () => {
    const feeds = new ProjectFeeds()
    for (const p of [1, 2, 3]) fill(feeds.of(p), 600)
    const probe = new SegmentIndex(feeds, { followIntervalMs: 0 })
    await probe.sync(1)
    const one = probe.stats().readyBytes
    assert.ok(one > 0)
    let clock = 0
    const index = new SegmentIndex(feeds, {
      followIntervalMs: 0,
      memoryBudgetBytes: Math.floor(2.5 * one),
      now: () => ++clock,
    })
    await index.sync(1)
    await index.sync(2)
    assert.equal(index.stats().readyProjects, 2)
    await index.count(1, eq('plan', 'pro')) // 1 is now more recent than 2
    await index.sync(3)
    assert.equal(index.isLoaded(1), true)
    assert.equal(index.isLoaded(2), false, 'project 2 was the least recently queried')
    assert.equal(index.isLoaded(3), true)
    const stats = index.stats()
    assert.equal(stats.evictions, 1)
    assert.ok(stats.readyBytes <= Math.floor(2.5 * one))
    // Project 2 is answered by the database path while it loads again, and exactly.
    const answer = await index.query(2, eq('plan', 'pro'), 10)
    assert.equal(answer.source, 'database')
    assert.equal(answer.count, reference(feeds.of(2).profiles, eq('plan', 'pro')).length)
  })

  test('warm-up completes while many clients query back to back, and every answer is exact', async () => {
    const feeds = new ProjectFeeds()
    const feed = feeds.of(1)
    fill(feed, 5000)
    feed.pageSize = 50
    // Every page of the load waits for a macrotask turn, like a real store's read.
    feed.betweenPages = () => new Promise((r) => setImmediate(r))
    const index = new SegmentIndex(feeds, { followIntervalMs: 0 })
    const sources = { index: 0, database: 0 }
    let uploads = 0
    const client = async (c: number) => {
      const where = conditions[c % conditions.length] as Condition
      while (!index.isLoaded(1) || sources.index < 100) {
        // Uploads only add matching users here: the answer lies between the counts before and after it.
        const before = reference(feed.profiles, where).length
        const answer = await index.query(1, where, 3)
        assert.ok(answer.count >= before && answer.count <= reference(feed.profiles, where).length)
        sources[answer.source]++
        if (c === 0) {
          // Uploads continue meanwhile: a new user per turn of this client.
          feed.put(`w${uploads++}`, attrs({ plan: 'pro' }))
        }
        await new Promise((r) => setImmediate(r))
      }
    }
    await Promise.all(Array.from({ length: 16 }, (_, c) => client(c)))
    assert.equal(index.isLoaded(1), true, 'the index became ready under load')
    assert.ok(sources.database > 0, 'queries were answered by the database while it loaded')
    assert.ok(sources.index >= 100)
    assert.equal(feeds.loads.get(1), 1)
    assert.equal(await index.count(1, eq('plan', 'pro')), reference(feed.profiles, eq('plan', 'pro')).length)
  })
})

test('identical database-path questions share scans, and none misses an upload acknowledged before it', async () => {
  const feed = new MemoryFeed()
  for (let i = 0; i < 10; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
  // Keep the index from loading: every question takes the database path.
  feed.betweenPages = () => new Promise(() => undefined)
  // The first scan holds until released, so later questions arrive while it runs.
  let release: () => void = () => undefined
  const gate = new Promise<void>((r) => (release = r))
  let scans = 0
  const store: SegmentStore = {
    readChanges: (p, t) => feed.readChanges(p, t),
    scanProfiles: (p, o) => feed.scanProfiles(p, o),
    countProfiles: async (p, w) => {
      const n = await feed.countProfiles(p, w)
      if (scans++ === 0) await gate
      return n
    },
  }
  const index = new SegmentIndex(store, { followIntervalMs: 0 })
  const first = index.query(1, eq('k', 'v'), 5)
  while (scans === 0) await new Promise((r) => setImmediate(r))
  const during = Array.from({ length: 20 }, () => index.query(1, eq('k', 'v'), 5))
  // Acknowledged while the first scan runs: the questions asked from now on must see it.
  feed.put('late', attrs({ k: 'v' }))
  const after = Array.from({ length: 20 }, () => index.query(1, eq('k', 'v'), 5))
  release()
  assert.equal((await first).count, 10)
  for (const a of await Promise.all([...during, ...after])) assert.equal(a.count, 11)
  assert.equal(scans, 2, 'two scans for forty-one questions')
  assert.equal((await index.query(1, eq('k', 'v'), 6)).count, 11, 'another page size is another question')
  assert.equal(scans, 3)
})

test('a loaded project that outgrows the budget in a catch-up is dropped and answered by the database', async () => {
  const feed = new MemoryFeed()
  feed.pageSize = 100
  for (let i = 0; i < 100; i++) feed.put(`u${i}`, attrs({ k: 'v' }))
  const probe = new SegmentIndex(feed, { followIntervalMs: 0 })
  await probe.sync(1)
  const small = probe.stats().readyBytes
  const index = new SegmentIndex(feed, { followIntervalMs: 0, memoryBudgetBytes: 2 * small })
  await index.sync(1)
  assert.equal(index.isLoaded(1), true)
  for (let i = 100; i < 20_000; i++) feed.put(`u${i}`, attrs({ k: 'v', pad: `${'x'.repeat(50)}${i}` }))
  const answer = await index.query(1, eq('k', 'v'), 3)
  assert.equal(answer.source, 'database')
  assert.equal(answer.count, 20_000)
  assert.equal(index.isLoaded(1), false)
  assert.equal(index.stats().overBudget, 1)
  assert.equal(index.stats().readyBytes + index.stats().loadingBytes, 0)
})
