import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { TraitbaseError } from '../core/errors.js'
import { evaluateCondition, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import type { AttributePatch, ProfilePatch, UploadBatch } from '../core/upload.js'
import { generateApiKey } from './api-keys.js'
import type { Profile, ProfileState, RequestLogEntry, Store } from './store.js'

/** What a backend's test file hands the contract. */
export interface StoreFixture {
  readonly store: Store
  /** Makes the database itself reject any write of this user id (e.g. with a trigger). */
  failWritesOf(userId: string): Promise<void>
  /**
   * Opens another store on the same database, as a second server process would; undefined when
   * the backend cannot share (`:memory:`), and then the multi-process tests are not registered.
   */
  readonly openSecond: (() => Promise<Store>) | undefined
  /** Opens a store on the same kind of database with `changeLog: false` (the SEGMENTS=off baseline). */
  openWithoutChangeLog(): Promise<Store>
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function attrs(o: Record<string, string | null>): AttributePatch {
  const out = Object.create(null) as AttributePatch
  for (const k of Object.keys(o)) out[k] = o[k] as string | null
  return out
}

/** A batch as parseUploadBody makes it: one patch per user, sorted by code point. */
function batch(...patches: [string, Record<string, string | null>][]): UploadBatch {
  const list: ProfilePatch[] = patches.map(([userId, a]) => ({ userId, attributes: attrs(a) }))
  list.sort((a, b) => compareCodePoints(a.userId, b.userId))
  return { patches: list, rows: list.length }
}

function logEntry(projectId: number, o: Partial<RequestLogEntry> = {}): RequestLogEntry {
  return {
    projectId,
    time: Date.now(),
    method: 'POST',
    path: '/v1/user/profiles',
    keyId: 'key_even',
    keyLabel: 'ci',
    requestId: 'req-1',
    status: 200,
    durationMs: 1.5,
    usersCreated: 1,
    usersUpdated: 2,
    error: null,
    dryRun: false,
    upload: false,
    ...o,
  }
}

function plain(p: ProfileState | undefined): Record<string, string> | undefined {
  return p === undefined ? undefined : { ...p.attributes }
}

/** The count, every matching id in order, and the page after the first one, as `expected` says. */
async function assertAnswers(
  store: Store,
  projectId: number,
  where: Condition,
  expected: readonly string[],
  what: string,
): Promise<void> {
  assert.equal(await store.countProfiles(projectId, where), expected.length, what)
  assert.deepEqual(
    (await store.scanProfiles(projectId, { where, limit: 1000 })).map((x) => x.userId),
    expected,
    what,
  )
  if (expected.length > 1) {
    const page = await store.scanProfiles(projectId, { where, limit: 2, afterUserId: expected[0] as string })
    assert.deepEqual(
      page.map((x) => x.userId),
      expected.slice(1, 3),
      what,
    )
  }
}

async function readAll(store: Store, projectId: number, token: string | null) {
  const feed = store.readChanges(projectId, token)
  let reset = false
  const upserts = new Map<string, ProfileState>()
  const deleted = new Set<string>()
  let pages = 0
  for await (const page of feed.pages) {
    pages++
    if (page.reset) {
      reset = true
      upserts.clear()
      deleted.clear()
    }
    for (const id of page.deletedUserIds) {
      upserts.delete(id)
      deleted.add(id)
    }
    for (const p of page.upserts) {
      deleted.delete(p.userId)
      upserts.set(p.userId, p)
    }
  }
  return { reset, upserts, deleted, pages, token: feed.token() }
}

/**
 * The behaviour every Store must show, run by each backend's test file against a real database.
 * Each test works in its own project, so one database serves the whole suite.
 */
export function describeStoreContract(
  name: string,
  makeStore: () => Promise<StoreFixture>,
  /** False for a database only one connection can reach (`:memory:`): the multi-process tests are not registered. */
  shareable = true,
): void {
  describe(`Store contract: ${name}`, () => {
    let fx: StoreFixture
    let store: Store
    const newProject = async () => (await store.ensureProject(`p-${randomBytes(6).toString('hex')}`)).id

    before(async () => {
      fx = await makeStore()
      store = fx.store
    })
    after(async () => {
      await fx.close()
    })

    test('ping answers and migrate is idempotent', async () => {
      await store.ping()
      await store.migrate()
      await store.migrate()
      assert.ok(store.kind === 'sqlite' || store.kind === 'postgres')
    })

    test('projects: ensureProject is idempotent, findProject finds it, names are distinct', async () => {
      const name = `proj-${randomBytes(4).toString('hex')}`
      assert.equal(await store.findProject(name), undefined)
      const a = await store.ensureProject(name)
      const b = await store.ensureProject(name)
      assert.deepEqual(a, b)
      assert.ok(Number.isInteger(a.id) && a.id > 0)
      assert.match(a.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      assert.deepEqual(await store.findProject(name), a)
      const other = await store.ensureProject(`${name}-other`)
      assert.notEqual(other.id, a.id)
      await assert.rejects(store.ensureProject(''), /project name/)
    })

    test('project time zone: UTC by default, set in canonical spelling, a bad name changes nothing', async () => {
      const p = await newProject()
      const q = await newProject()
      assert.equal(await store.getProjectTimeZone(p), 'UTC')
      assert.equal(await store.setProjectTimeZone(p, 'asia/tokyo'), 'Asia/Tokyo')
      assert.equal(await store.getProjectTimeZone(p), 'Asia/Tokyo')
      assert.equal(await store.getProjectTimeZone(q), 'UTC', 'another project keeps its own zone')
      for (const bad of ['Mars/Olympus', '+09:00', '', 'Asia/Tokyo; DROP TABLE projects']) {
        await assert.rejects(store.setProjectTimeZone(p, bad), (e: unknown) => {
          assert.ok(e instanceof TraitbaseError)
          assert.equal(e.code, 'VALIDATION_FAILED')
          assert.equal(e.issues?.[0]?.path, 'time_zone')
          return true
        })
      }
      assert.equal(await store.getProjectTimeZone(p), 'Asia/Tokyo')
      assert.equal(await store.setProjectTimeZone(2_000_000_000, 'UTC'), undefined)
      assert.equal(await store.getProjectTimeZone(2_000_000_000), undefined)
    })

    test('update policy: existing attributes updated, new ones added, unknown users created', async () => {
      const p = await newProject()
      const first = await store.applyUpload(p, batch(['u1', { plan: 'free', country: 'JP' }]))
      assert.deepEqual(first, { created: 1, updated: 0, valuesWritten: 2 })
      const second = await store.applyUpload(p, batch(['u1', { plan: 'pro', age: '31' }], ['u2', { plan: 'free' }]))
      assert.deepEqual(second, { created: 1, updated: 1, valuesWritten: 3 })
      assert.deepEqual(plain(await store.getProfile(p, 'u1')), { plan: 'pro', country: 'JP', age: '31' })
      assert.deepEqual(plain(await store.getProfile(p, 'u2')), { plan: 'free' })
      assert.equal(await store.getProfile(p, 'u3'), undefined)
    })

    test('null clears an attribute, never creates one, and leaves the others untouched', async () => {
      const p = await newProject()
      await store.applyUpload(p, batch(['u1', { a: '1', b: '2', c: '3' }]))
      const r = await store.applyUpload(p, batch(['u1', { a: null, d: null }], ['u2', { a: null, b: 'x' }]))
      assert.deepEqual(r, { created: 1, updated: 1, valuesWritten: 1 })
      assert.deepEqual(plain(await store.getProfile(p, 'u1')), { b: '2', c: '3' })
      assert.deepEqual(plain(await store.getProfile(p, 'u2')), { b: 'x' })
      await store.applyUpload(p, batch(['u3', { only: null }]))
      assert.deepEqual(plain(await store.getProfile(p, 'u3')), {})
    })

    test('created_at is kept and updated_at moves on update', async () => {
      const p = await newProject()
      await store.applyUpload(p, batch(['u', { a: '1' }]))
      const before = (await store.getProfile(p, 'u')) as Profile
      assert.equal(before.createdAt, before.updatedAt)
      await sleep(15)
      await store.applyUpload(p, batch(['u', { b: '2' }]))
      const after = (await store.getProfile(p, 'u')) as Profile
      assert.equal(after.createdAt, before.createdAt)
      assert.ok(after.updatedAt > before.updatedAt, `${after.updatedAt} > ${before.updatedAt}`)
      assert.ok(Math.abs(Date.parse(after.updatedAt) - Date.now()) < 60_000)
    })

    test('projects are isolated: same user id, separate profiles, deletes, counts and scans', async () => {
      const p1 = await newProject()
      const p2 = await newProject()
      await store.applyUpload(p1, batch(['same', { v: 'one' }], ['only1', { v: '1' }]))
      await store.applyUpload(p2, batch(['same', { v: 'two' }]))
      assert.deepEqual(plain(await store.getProfile(p1, 'same')), { v: 'one' })
      assert.deepEqual(plain(await store.getProfile(p2, 'same')), { v: 'two' })
      assert.equal(await store.getProfile(p2, 'only1'), undefined)
      assert.equal(await store.countProfiles(p1), 2)
      assert.equal(await store.countProfiles(p2), 1)
      assert.deepEqual(
        (await store.scanProfiles(p2, { limit: 10 })).map((x) => x.userId),
        ['same'],
      )
      assert.equal(await store.deleteProfile(p2, 'only1'), false)
      assert.equal(await store.deleteProfile(p2, 'same'), true)
      assert.deepEqual(plain(await store.getProfile(p1, 'same')), { v: 'one' })
    })

    test('__proto__, constructor and friends round-trip as attribute names and user ids', async () => {
      const p = await newProject()
      const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', 'valueOf']
      const a = Object.create(null) as Record<string, string>
      names.forEach((n, i) => (a[n] = `v${i}`))
      for (const id of names) await store.applyUpload(p, batch([id, a]))
      for (const id of names) {
        const prof = (await store.getProfile(p, id)) as Profile
        assert.equal(prof.userId, id)
        assert.equal(Object.getPrototypeOf(prof.attributes), null)
        assert.deepEqual(Object.keys(prof.attributes).sort(), [...names].sort())
        names.forEach((n, i) => assert.equal(prof.attributes[n], `v${i}`))
      }
      assert.equal(await store.getProfile(p, 'hasOwnProperty2'), undefined)
      assert.equal(await store.countProfiles(p), names.length)
    })

    test('unicode values, names and ids round-trip; 128 code points fit', async () => {
      const p = await newProject()
      const emoji = '😀'.repeat(128)
      const kanji = '漢'.repeat(128)
      const ids = ['ユーザー1', '😀user', 'e\u0301', '\uE000', 'naïve', 'a"b\\c\'d', ' spaced ']
      await store.applyUpload(
        p,
        batch(
          ...ids.map((id): [string, Record<string, string>] => [id, { 名前: kanji, 'emoji 😀': emoji, q: '"\\\n\t' }]),
        ),
      )
      for (const id of ids) {
        assert.deepEqual(plain(await store.getProfile(p, id)), { 名前: kanji, 'emoji 😀': emoji, q: '"\\\n\t' })
      }
    })

    test('scan is in code point order with keyset pages; count is exact', async () => {
      const p = await newProject()
      const ids = new Set<string>(['\uE000', '\u{1F600}', 'Z', 'a', 'ä', '10', '9'])
      while (ids.size < 250) ids.add(randomBytes(1 + (ids.size % 6)).toString('base64url'))
      const all = [...ids]
      await store.applyUpload(
        p,
        batch(...all.slice(0, 120).map((id): [string, Record<string, string>] => [id, { k: id }])),
      )
      await store.applyUpload(
        p,
        batch(...all.slice(120).map((id): [string, Record<string, string>] => [id, { k: id }])),
      )
      const expected = [...all].sort(compareCodePoints)
      const seen: string[] = []
      let afterUserId: string | undefined
      for (;;) {
        const page = await store.scanProfiles(
          p,
          afterUserId === undefined ? { limit: 100 } : { limit: 100, afterUserId },
        )
        for (const prof of page) assert.equal(prof.attributes['k'], prof.userId)
        seen.push(...page.map((x) => x.userId))
        if (page.length < 100) break
        afterUserId = page[page.length - 1]?.userId
      }
      assert.deepEqual(seen, expected)
      assert.ok(expected.indexOf('\uE000') < expected.indexOf('\u{1F600}'))
      assert.equal(await store.countProfiles(p), 250)
    })

    test('scan and count with a condition agree with the reference evaluator', async () => {
      const p = await newProject()
      const profiles: [string, Record<string, string>][] = []
      for (let i = 0; i < 60; i++) {
        const a: Record<string, string> = { plan: ['free', 'pro', 'team'][i % 3] as string, age: String(18 + (i % 40)) }
        if (i % 4 === 0) a['vip'] = 'true'
        profiles.push([`user${String(i).padStart(3, '0')}`, a])
      }
      await store.applyUpload(p, batch(...profiles))
      const conditions: Condition[] = [
        { kind: 'text', field: 'plan', op: 'eq', value: 'pro' },
        { kind: 'numeric', field: 'age', op: 'gte', value: 40 },
        {
          kind: 'all',
          of: [
            { kind: 'presence', field: 'vip', op: 'exists' },
            { kind: 'not', of: { kind: 'set', field: 'plan', op: 'in', values: ['free'] } },
          ],
        },
        { kind: 'text', field: 'user_id', op: 'starts_with', value: 'user01' },
      ]
      for (const where of conditions) {
        const expected = profiles
          .filter(([id, a]) => evaluateCondition(where, id, attrs(a) as Record<string, string>))
          .map(([id]) => id)
          .sort(compareCodePoints)
        assert.ok(expected.length > 0, 'fixture matches something')
        assert.equal(await store.countProfiles(p, where), expected.length, JSON.stringify(where))
        const scanned = await store.scanProfiles(p, { where, limit: 1000 })
        assert.deepEqual(
          scanned.map((x) => x.userId),
          expected,
        )
        const second = await store.scanProfiles(p, { where, limit: 2, afterUserId: expected[0] as string })
        assert.deepEqual(
          second.map((x) => x.userId),
          expected.slice(1, 3),
        )
      }
    })

    test('attribute indexes: built, listed, dropped; answers stay exactly the reference with and without them', async () => {
      const p = await newProject()
      const odd = `it's a "q\\uote"`
      const profiles = new Map<string, Record<string, string>>()
      for (let i = 0; i < 80; i++) {
        const a: Record<string, string> = { plan: ['free', 'pro', 'team', 'Pro'][i % 4] as string }
        if (i % 5 !== 0)
          a['ltv'] = [String(i * 7.5), '01', 'abc', '-3e2', ' 5'][i % 5 === 1 ? 1 : i % 7 === 0 ? 2 : 0] as string
        if (i % 3 === 0) a[odd] = i % 2 === 0 ? 'x' : 'y'
        if (i % 6 !== 0) a['city'] = i % 2 === 0 ? 'Tokyo' : 'Paris'
        profiles.set(`u${String(i).padStart(3, '0')}`, a)
      }
      const upload = (entries: [string, Record<string, string>][]) =>
        store.applyUpload(p, batch(...entries.map(([id, a]): [string, Record<string, string | null>] => [id, a])))
      await upload([...profiles])
      const conditions: Condition[] = [
        { kind: 'text', field: 'plan', op: 'eq', value: 'pro' },
        { kind: 'text', field: 'plan', op: 'neq', value: 'pro' },
        { kind: 'set', field: 'plan', op: 'in', values: ['team', 'Pro', 'nope'] },
        { kind: 'set', field: 'plan', op: 'not_in', values: ['free'] },
        {
          kind: 'all',
          of: [
            { kind: 'text', field: 'plan', op: 'eq', value: 'free' },
            { kind: 'presence', field: odd, op: 'exists' },
          ],
        },
        { kind: 'presence', field: 'city', op: 'not_exists' },
        { kind: 'presence', field: odd, op: 'exists' },
        { kind: 'text', field: odd, op: 'eq', value: 'x' },
        {
          kind: 'all',
          of: [
            { kind: 'numeric', field: 'ltv', op: 'gte', value: 100 },
            { kind: 'numeric', field: 'ltv', op: 'lt', value: 400 },
          ],
        },
        { kind: 'numeric', field: 'ltv', op: 'lte', value: 0 },
        { kind: 'not', of: { kind: 'numeric', field: 'ltv', op: 'gt', value: 200 } },
        { kind: 'not', of: { kind: 'text', field: 'plan', op: 'eq', value: 'pro' } },
        {
          kind: 'any',
          of: [
            { kind: 'text', field: 'plan', op: 'eq', value: 'team' },
            { kind: 'presence', field: 'city', op: 'not_exists' },
          ],
        },
      ]
      const check = async (label: string) => {
        for (const where of conditions) {
          const expected = [...profiles]
            .filter(([id, a]) => evaluateCondition(where, id, attrs(a) as Record<string, string>))
            .map(([id]) => id)
            .sort(compareCodePoints)
          await assertAnswers(store, p, where, expected, `${label}: ${JSON.stringify(where)}`)
        }
      }
      await check('no index')
      assert.deepEqual(await store.listAttributeIndexes(p), [])
      const built = await store.createAttributeIndex(p, 'plan', 'text')
      assert.equal(built.created, true)
      assert.equal(built.index.name, 'plan')
      assert.equal(built.index.kind, 'text')
      assert.match(built.index.indexName, /^tb_attr_\d+_t_[0-9a-f]{16}$/)
      assert.equal((await store.createAttributeIndex(p, 'plan', 'text')).created, false, 'idempotent')
      await store.createAttributeIndex(p, 'ltv', 'number')
      await store.createAttributeIndex(p, 'city', 'text')
      await store.createAttributeIndex(p, odd, 'text')
      assert.deepEqual(
        (await store.listAttributeIndexes(p)).map((i) => [i.name, i.kind]),
        [
          ['city', 'text'],
          ['ltv', 'number'],
          ['plan', 'text'],
          [odd, 'text'],
        ].sort((a, b) => compareCodePoints(a[0] as string, b[0] as string)),
      )
      await check('indexed')
      // Writes after the build: updates, clears, new users, a delete.
      const changes: [string, Record<string, string | null>][] = [
        ['u001', { plan: 'pro', ltv: '150', city: null }],
        ['u002', { plan: null, [odd]: 'x' }],
        ['u900', { plan: 'pro', ltv: '399.5' }],
      ]
      await store.applyUpload(p, batch(...changes))
      for (const [id, patch] of changes) {
        const a = { ...(profiles.get(id) ?? {}) }
        for (const [k, v] of Object.entries(patch)) {
          if (v === null || v === '') delete a[k]
          else a[k] = v
        }
        profiles.set(id, a)
      }
      assert.equal(await store.deleteProfile(p, 'u004'), true)
      profiles.delete('u004')
      await check('indexed, after writes')
      // Another project's rows are not in this project's indexes, nor in its answers.
      const other = await newProject()
      await store.applyUpload(other, batch(['u001', { plan: 'pro' }]))
      assert.equal(await store.countProfiles(other, { kind: 'text', field: 'plan', op: 'eq', value: 'pro' }), 1)
      assert.deepEqual(await store.listAttributeIndexes(other), [])

      assert.equal(await store.dropAttributeIndex(p, 'plan', 'text'), true)
      assert.equal(await store.dropAttributeIndex(p, 'plan', 'text'), false)
      assert.equal(await store.dropAttributeIndex(p, 'ltv', 'text'), false, 'only a number index on ltv')
      assert.deepEqual(
        (await store.listAttributeIndexes(p)).map((i) => i.name),
        ['city', 'ltv', odd].sort(compareCodePoints),
      )
      await check('after a drop')
      for (const i of await store.listAttributeIndexes(p)) await store.dropAttributeIndex(p, i.name, i.kind)
      assert.deepEqual(await store.listAttributeIndexes(p), [])
    })

    test('attribute indexes: indexed and unindexed answers are equal through changes, clears, deletes, a drop and a rebuild', async () => {
      const indexed = await newProject()
      const plain = await newProject()
      const profiles = new Map<string, Record<string, string>>()
      const plans = ['free', 'pro', 'team', null]
      const langs = ['ja', 'zh', 'ko', 'en', null]
      const write = async (patches: [string, Record<string, string | null>][]) => {
        for (const project of [indexed, plain]) await store.applyUpload(project, batch(...patches))
        for (const [id, patch] of patches) {
          const a = { ...(profiles.get(id) ?? {}) }
          for (const [k, v] of Object.entries(patch)) {
            if (v === null) delete a[k]
            else a[k] = v
          }
          profiles.set(id, a)
        }
      }
      const first: [string, Record<string, string | null>][] = []
      for (let i = 0; i < 60; i++) {
        first.push([
          `u${String(i).padStart(3, '0')}`,
          { plan: plans[i % 4] ?? null, lang: langs[i % 5] ?? null, ltv: String(i * 10), note: `n${i % 3}` },
        ])
      }
      await write(first)
      const eqPro: Condition = { kind: 'text', field: 'plan', op: 'eq', value: 'pro' }
      const conditions: Condition[] = [
        eqPro,
        { kind: 'set', field: 'lang', op: 'in', values: ['ja', 'ko', 'ja', 'xx'] },
        { kind: 'set', field: 'lang', op: 'in', values: [] },
        { kind: 'presence', field: 'plan', op: 'exists' },
        { kind: 'presence', field: 'plan', op: 'not_exists' },
        { kind: 'text', field: 'plan', op: 'neq', value: 'pro' },
        { kind: 'set', field: 'lang', op: 'not_in', values: ['ja', 'zh'] },
        { kind: 'not', of: eqPro },
        { kind: 'not', of: { kind: 'presence', field: 'lang', op: 'exists' } },
        { kind: 'all', of: [eqPro, { kind: 'set', field: 'lang', op: 'in', values: ['ja', 'zh', 'en'] }] },
        { kind: 'all', of: [eqPro, { kind: 'presence', field: 'lang', op: 'exists' }] },
        {
          kind: 'all',
          of: [
            { kind: 'all', of: [eqPro, { kind: 'numeric', field: 'ltv', op: 'gte', value: 100 }] },
            { kind: 'text', field: 'note', op: 'neq', value: 'n1' },
          ],
        },
        { kind: 'not', of: { kind: 'all', of: [eqPro, { kind: 'text', field: 'lang', op: 'eq', value: 'ko' }] } },
        { kind: 'any', of: [eqPro, { kind: 'text', field: 'lang', op: 'eq', value: 'zh' }] },
        { kind: 'all', of: [{ kind: 'text', field: 'user_id', op: 'eq', value: 'u001' }, eqPro] },
        {
          kind: 'any',
          of: [
            { kind: 'all', of: [eqPro, { kind: 'numeric', field: 'ltv', op: 'gte', value: 100 }] },
            { kind: 'set', field: 'lang', op: 'in', values: ['ko'] },
            { kind: 'presence', field: 'plan', op: 'not_exists' },
          ],
        },
        { kind: 'any', of: [eqPro, { kind: 'numeric', field: 'ltv', op: 'lt', value: 50 }] },
        // A store given "" directly (the API clears with it before) keeps it as a value.
        { kind: 'text', field: 'plan', op: 'eq', value: '' },
        {
          kind: 'all',
          of: [
            { kind: 'presence', field: 'plan', op: 'not_exists' },
            { kind: 'text', field: 'lang', op: 'eq', value: 'ja' },
          ],
        },
      ]
      const check = async (label: string) => {
        for (const where of conditions) {
          const expected = [...profiles]
            .filter(([id, a]) => evaluateCondition(where, id, a))
            .map(([id]) => id)
            .sort(compareCodePoints)
          for (const project of [indexed, plain]) {
            await assertAnswers(store, project, where, expected, `${label}: ${JSON.stringify(where)}`)
          }
        }
      }
      await store.createAttributeIndex(indexed, 'plan', 'text')
      await store.createAttributeIndex(indexed, 'lang', 'text')
      await check('built')
      // Values changed, cleared, set again to what they were; unchanged rewrites; new users; deletes.
      await write([
        ['u001', { plan: 'team', lang: null }],
        ['u002', { plan: null, note: 'n9' }],
        ['u003', { plan: 'free', lang: 'ja' }],
        ['u005', { plan: 'pro', lang: 'ja' }],
        ['u900', { plan: 'pro', lang: 'ko' }],
        ['u008', { plan: '' }],
      ])
      await write([
        ['u001', { plan: 'pro' }],
        ['u003', { plan: 'free', lang: 'ja' }],
        ['u005', { plan: 'pro', lang: 'ja' }],
      ])
      for (const id of ['u006', 'u900']) {
        for (const project of [indexed, plain]) assert.equal(await store.deleteProfile(project, id), true)
        profiles.delete(id)
      }
      await check('after writes')
      await write([['u006', { plan: 'pro', lang: 'zh' }]])
      await check('a deleted user uploaded again')
      // Dropped, written to while dropped, rebuilt: nothing stale comes back.
      assert.equal(await store.dropAttributeIndex(indexed, 'plan', 'text'), true)
      await write([
        ['u001', { plan: 'free' }],
        ['u007', { plan: 'pro' }],
      ])
      await check('plan dropped')
      await store.createAttributeIndex(indexed, 'plan', 'text')
      await check('plan rebuilt')
      for (const i of await store.listAttributeIndexes(indexed)) await store.dropAttributeIndex(indexed, i.name, i.kind)
      await check('all dropped')
    })

    test('attribute indexes: bad names, kinds and projects are clear errors that build nothing', async () => {
      const p = await newProject()
      const bad: [string, string][] = [
        ['', 'text'],
        ['user_id', 'text'],
        ['x'.repeat(51), 'text'],
        ['a\0b', 'text'],
        ['plan', 'date'],
      ]
      for (const [name, kind] of bad) {
        await assert.rejects(
          store.createAttributeIndex(p, name, kind as 'text'),
          (e: unknown) => e instanceof TraitbaseError && e.code === 'BAD_REQUEST',
          `${JSON.stringify(name)} ${kind}`,
        )
      }
      await assert.rejects(
        store.createAttributeIndex(987_654_321, 'plan', 'text'),
        (e: unknown) => e instanceof TraitbaseError && e.code === 'NOT_FOUND',
      )
      assert.deepEqual(await store.listAttributeIndexes(p), [])
      assert.deepEqual(await store.listAttributeIndexes(987_654_321), [])
    })

    test('delete erases the user; a new upload creates it afresh', async () => {
      const p = await newProject()
      await store.applyUpload(p, batch(['gone', { a: '1' }], ['kept', { a: '2' }]))
      const old = (await store.getProfile(p, 'gone')) as Profile
      assert.equal(await store.deleteProfile(p, 'gone'), true)
      assert.equal(await store.deleteProfile(p, 'gone'), false)
      assert.equal(await store.getProfile(p, 'gone'), undefined)
      assert.equal(await store.countProfiles(p), 1)
      await sleep(5)
      const r = await store.applyUpload(p, batch(['gone', { b: '3' }]))
      assert.equal(r.created, 1)
      const fresh = (await store.getProfile(p, 'gone')) as Profile
      assert.deepEqual(plain(fresh), { b: '3' })
      assert.ok(fresh.createdAt > old.createdAt)
    })

    test('keys: create, find by hash, list, touch, revoke', async () => {
      const projectName = `keys-${randomBytes(4).toString('hex')}`
      const project = await store.ensureProject(projectName)
      const { hash } = generateApiKey()
      const key = await store.createKey({ projectId: project.id, label: 'ci', scopes: ['profiles:write'], hash })
      assert.match(key.id, /^key_[0-9a-f]{16}$/)
      assert.equal(key.projectId, project.id)
      assert.equal(key.projectName, projectName)
      assert.equal(key.label, 'ci')
      assert.deepEqual(key.scopes, ['profiles:write'])
      assert.equal(key.hash, hash)
      assert.equal(key.lastUsedAt, null)
      assert.equal(key.revokedAt, null)
      assert.deepEqual(await store.findKeyByHash(hash), key)
      assert.equal(await store.findKeyByHash(generateApiKey().hash), undefined)

      const second = await store.createKey({
        projectId: project.id,
        label: '',
        scopes: ['profiles:write', 'profiles:read'],
        hash: generateApiKey().hash,
      })
      const listed = await store.listKeys(project.id)
      assert.deepEqual(listed.map((k) => k.id).sort(), [key.id, second.id].sort())
      assert.deepEqual(await store.listKeys((await store.ensureProject(`${projectName}-x`)).id), [])

      const at = new Date(Date.now() - 1000)
      await store.touchKey(key.id, at)
      await store.touchKey(key.id, new Date(at.getTime() - 5000))
      assert.equal((await store.findKeyByHash(hash))?.lastUsedAt, at.toISOString())

      assert.equal(await store.revokeKey(key.id), true)
      assert.equal(await store.revokeKey(key.id), false)
      assert.equal(await store.revokeKey('key_0000000000000000'), false)
      const revoked = await store.findKeyByHash(hash)
      assert.ok(revoked?.revokedAt !== null && revoked?.revokedAt !== undefined)
      assert.equal((await store.findKeyByHash(second.hash))?.revokedAt, null)
      await assert.rejects(store.createKey({ projectId: 987654321, label: '', scopes: ['profiles:read'], hash }))
    })

    test('key hashes are unique', async () => {
      const p = await newProject()
      const { hash } = generateApiKey()
      await store.createKey({ projectId: p, label: 'a', scopes: ['profiles:read'], hash })
      await assert.rejects(store.createKey({ projectId: p, label: 'b', scopes: ['profiles:read'], hash }))
    })

    test('saved segments: create, list, get, update, delete, per project', async () => {
      const p = await newProject()
      const other = await newProject()
      const where = { field: 'plan', op: 'eq', value: 'pro', __proto__x: 1 }
      const s = await store.createSegment(p, 'Pro users', where)
      assert.match(s.id, /^seg_[0-9a-f]{16}$/)
      assert.equal(s.name, 'Pro users')
      assert.deepEqual(s.where, where)
      assert.deepEqual(await store.getSegment(p, s.id), s)
      assert.equal(await store.getSegment(other, s.id), undefined)
      const s2 = await store.createSegment(p, 'All', { all: [] })
      assert.deepEqual((await store.listSegments(p)).map((x) => x.id).sort(), [s.id, s2.id].sort())
      assert.deepEqual(await store.listSegments(other), [])
      await sleep(5)
      const updated = await store.updateSegment(p, s.id, 'Renamed', { any: [] })
      assert.equal(updated?.name, 'Renamed')
      assert.deepEqual(updated?.where, { any: [] })
      assert.equal(updated?.createdAt, s.createdAt)
      assert.ok((updated?.updatedAt ?? '') > s.updatedAt)
      assert.equal(await store.updateSegment(other, s.id, 'x', {}), undefined)
      assert.equal(await store.deleteSegment(other, s.id), false)
      assert.equal(await store.deleteSegment(p, s.id), true)
      assert.equal(await store.deleteSegment(p, s.id), false)
      assert.equal(await store.getSegment(p, s.id), undefined)
    })

    test('change feed: reset first, then upserts and deletions since the token', async () => {
      const p = await newProject()
      const empty = await readAll(store, p, null)
      assert.equal(empty.reset, true)
      assert.equal(empty.upserts.size, 0)
      await store.applyUpload(p, batch(['a', { x: '1' }], ['b', { x: '2' }]))
      const first = await readAll(store, p, empty.token)
      assert.equal(first.reset, false)
      assert.deepEqual([...first.upserts.keys()].sort(), ['a', 'b'])
      assert.deepEqual(plain(first.upserts.get('a')), { x: '1' })

      await store.applyUpload(p, batch(['a', { y: '3' }], ['c', { x: '4' }]))
      await store.deleteProfile(p, 'b')
      const second = await readAll(store, p, first.token)
      assert.equal(second.reset, false)
      assert.deepEqual([...second.upserts.keys()].sort(), ['a', 'c'])
      assert.deepEqual(plain(second.upserts.get('a')), { x: '1', y: '3' })
      assert.deepEqual([...second.deleted], ['b'])

      const full = await readAll(store, p, null)
      assert.equal(full.reset, true)
      assert.deepEqual([...full.upserts.keys()].sort(), ['a', 'c'])

      const quiet = await readAll(store, p, second.token)
      assert.equal(quiet.reset, false)
      assert.equal(quiet.deleted.size, 0)
      const other = await newProject()
      await store.applyUpload(other, batch(['z', { x: '1' }]))
      const stillQuiet = await readAll(store, p, second.token)
      assert.equal(stillQuiet.upserts.has('z'), false)
      await assert.rejects(async () => readAll(store, p, 'not-a-token'))

      // __proto__ and friends arrive as own keys, on the incremental and the reset path alike.
      const patch = Object.create(null) as Record<string, string>
      patch['__proto__'] = 'p'
      patch['constructor'] = 'c'
      patch['toString'] = 't'
      await store.applyUpload(p, batch(['t', patch]))
      for (const read of [await readAll(store, p, second.token), await readAll(store, p, null)]) {
        const state = read.upserts.get('t')
        assert.ok(state)
        assert.deepEqual(Object.keys(state.attributes).sort(), ['__proto__', 'constructor', 'toString'])
        assert.equal(Object.getOwnPropertyDescriptor(state.attributes, '__proto__')?.value, 'p')
        assert.equal(state.attributes['toString'], 't')
      }
    })

    test('change feed pages large results and sees deletions made after a reset read', async () => {
      const p = await newProject()
      const rows: [string, Record<string, string>][] = []
      for (let i = 0; i < 2500; i++) rows.push([`u${i}`, { i: String(i) }])
      await store.applyUpload(p, batch(...rows))
      const full = await readAll(store, p, null)
      assert.ok(full.pages >= 3, `pages: ${full.pages}`)
      assert.equal(full.upserts.size, 2500)
      await store.applyUpload(p, batch(...rows.map(([id]): [string, Record<string, string>] => [id, { j: 'x' }])))
      await store.deleteProfile(p, 'u7')
      const next = await readAll(store, p, full.token)
      assert.equal(next.reset, false)
      assert.ok(next.pages >= 3)
      assert.equal(next.upserts.size, 2499)
      assert.deepEqual(plain(next.upserts.get('u42')), { i: '42', j: 'x' })
      assert.deepEqual([...next.deleted], ['u7'])
    })

    test('change feed: pruning past a token makes the next read a reset', async () => {
      const p = await newProject()
      await store.applyUpload(p, batch(['a', { x: '1' }]))
      const t0 = (await readAll(store, p, null)).token
      // More entries than one pruning chunk (10,000), so pruning must loop.
      const many: [string, Record<string, string>][] = []
      for (let i = 0; i < 12_000; i++) many.push([`many${i}`, { x: '0' }])
      await store.applyUpload(p, batch(...many))
      await store.applyUpload(p, batch(['b', { x: '2' }]))
      await sleep(10)
      const pruned = await store.pruneChanges(new Date())
      assert.ok(pruned >= 12_002, `pruned ${pruned}`)
      const after = await readAll(store, p, t0)
      assert.equal(after.reset, true)
      assert.equal(after.upserts.size, 12_002)
      assert.ok(after.upserts.has('a') && after.upserts.has('b'))
      await store.applyUpload(p, batch(['c', { x: '3' }]))
      const incremental = await readAll(store, p, after.token)
      assert.equal(incremental.reset, false)
      assert.deepEqual([...incremental.upserts.keys()], ['c'])
    })

    test('a batch the database rejects mid-way leaves nothing behind', async () => {
      const p = await newProject()
      const bad = `boom-${randomBytes(4).toString('hex')}`
      await store.applyUpload(p, batch(['a', { v: 'old' }]))
      const token = (await readAll(store, p, null)).token
      await fx.failWritesOf(bad)
      await assert.rejects(store.applyUpload(p, batch(['a', { v: 'new' }], [bad, { v: '1' }], ['zz', { v: '1' }])))
      assert.deepEqual(plain(await store.getProfile(p, 'a')), { v: 'old' })
      assert.equal(await store.getProfile(p, 'zz'), undefined)
      assert.equal(await store.countProfiles(p), 1)
      const changes = await readAll(store, p, token)
      assert.equal(changes.upserts.size, 0)
      const [good, failed] = await Promise.allSettled([
        store.applyUpload(p, batch(['b', { v: '1' }])),
        store.applyUpload(p, batch([bad, { v: '2' }])),
      ])
      assert.equal(good.status, 'fulfilled')
      assert.equal(failed.status, 'rejected')
      assert.deepEqual(plain(await store.getProfile(p, 'b')), { v: '1' })
    })

    test('concurrent overlapping uploads in opposite orders: no deadlock, no lost attribute', async () => {
      const p = await newProject()
      const users = Array.from({ length: 60 }, (_, i) => `user-${String(i).padStart(2, '0')}`)
      const writers = 16
      const uploads: Promise<unknown>[] = []
      for (let w = 0; w < writers; w++) {
        for (let round = 0; round < 3; round++) {
          const mine = w % 2 === 0 ? users : [...users].reverse()
          const slice = mine.slice(round * 10, round * 10 + 40)
          const patches: ProfilePatch[] = slice.map((userId) => ({
            userId,
            attributes: attrs({ [`w${w}`]: String(round), shared: `w${w}` }),
          }))
          // Some callers may not sort; the store must still not deadlock.
          uploads.push(store.applyUpload(p, { patches, rows: patches.length }))
        }
      }
      const results = await Promise.allSettled(uploads)
      assert.deepEqual(
        results.filter((r) => r.status === 'rejected'),
        [],
      )
      for (const userId of users) {
        const prof = (await store.getProfile(p, userId)) as Profile
        for (let w = 0; w < writers; w++) {
          const mine = w % 2 === 0 ? users : [...users].reverse()
          const idx = mine.indexOf(userId)
          const rounds = [0, 1, 2].filter((r) => idx >= r * 10 && idx < r * 10 + 40)
          if (rounds.length > 0) assert.ok(prof.attributes[`w${w}`] !== undefined, `${userId} lost w${w}`)
        }
      }
      assert.equal(await store.countProfiles(p), users.length)
    })

    test('the bulk path takes batches far larger than 100 users', async () => {
      const p = await newProject()
      const rows: [string, Record<string, string>][] = []
      for (let i = 0; i < 3500; i++) rows.push([`bulk${i}`, { a: String(i), b: i % 2 ? '' : 'x' }])
      const r = await store.applyUpload(
        p,
        batch(
          ...rows.map(([id, a]): [string, Record<string, string | null>] => [
            id,
            { a: a['a'] as string, b: a['b'] || null },
          ]),
        ),
      )
      assert.deepEqual(r, { created: 3500, updated: 0, valuesWritten: 3500 + 1750 })
      assert.equal(await store.countProfiles(p), 3500)
      assert.deepEqual(plain(await store.getProfile(p, 'bulk3')), { a: '3' })
      assert.deepEqual(plain(await store.getProfile(p, 'bulk4')), { a: '4', b: 'x' })
    })

    test('NUL characters either round-trip or are refused as a validation error that stores nothing', async () => {
      const p = await newProject()
      try {
        await store.applyUpload(p, batch(['nul\0id', { 'k\0': 'v\0' }], ['fine', { a: '1' }]))
        assert.deepEqual(plain(await store.getProfile(p, 'nul\0id')), { 'k\0': 'v\0' })
      } catch (error) {
        assert.equal((error as { code?: string }).code, 'VALIDATION_FAILED')
        assert.equal(await store.countProfiles(p), 0)
      }
    })

    test('without a change log every read of the feed starts over, so readers stay correct', async () => {
      const noLog = await fx.openWithoutChangeLog()
      try {
        const p = (await noLog.ensureProject('no-log')).id
        await noLog.applyUpload(p, batch(['a', { a: '1' }]))
        const first = noLog.readChanges(p, null)
        for await (const _ of first.pages);
        await noLog.applyUpload(p, batch(['b', { a: '1' }]))
        const again = noLog.readChanges(p, first.token())
        const pages = []
        for await (const page of again.pages) pages.push(page)
        assert.equal(pages[0]?.reset, true)
        assert.deepEqual(pages.flatMap((x) => x.upserts.map((u) => u.userId)).sort(), ['a', 'b'])
      } finally {
        await noLog.close()
      }
    })

    describe('idempotency keys', () => {
      const T0 = Date.parse('2026-01-01T00:00:00.000Z')
      const claimAt = (projectId: number, key: string, fingerprint: string, at: number) =>
        store.claimIdempotencyKey({
          projectId,
          key,
          fingerprint,
          now: new Date(at),
          expiredBefore: new Date(at - 24 * 3_600_000),
          abandonedBefore: new Date(at - 60_000),
        })

      test('first claim wins; in flight, mismatch, completed replay; scoped per project', async () => {
        const [p, q] = [await newProject(), await newProject()]
        assert.deepEqual(await claimAt(p, 'k1', 'f1', T0), { kind: 'claimed' })
        assert.deepEqual(await claimAt(p, 'k1', 'f1', T0 + 1), { kind: 'in_flight' })
        assert.deepEqual(await claimAt(p, 'k1', 'f2', T0 + 1), { kind: 'mismatch' }, 'another body: mismatch first')
        assert.deepEqual(await claimAt(q, 'k1', 'f2', T0 + 1), { kind: 'claimed' }, 'another project: its own key')
        await store.completeIdempotencyKey(p, 'k1', 200, '{"msg":"ok","timestamp":1}')
        assert.deepEqual(await claimAt(p, 'k1', 'f1', T0 + 2), {
          kind: 'completed',
          status: 200,
          body: '{"msg":"ok","timestamp":1}',
        })
        assert.deepEqual(await claimAt(p, 'k1', 'f2', T0 + 2), { kind: 'mismatch' })
      })

      test('released keys are free again; completed ones are not released', async () => {
        const p = await newProject()
        assert.equal((await claimAt(p, 'k', 'f', T0)).kind, 'claimed')
        await store.releaseIdempotencyKey(p, 'k')
        assert.equal((await claimAt(p, 'k', 'other', T0 + 1)).kind, 'claimed', 'a failed first request binds nothing')
        await store.completeIdempotencyKey(p, 'k', 200, 'x')
        await store.releaseIdempotencyKey(p, 'k')
        assert.equal((await claimAt(p, 'k', 'other', T0 + 2)).kind, 'completed')
      })

      test('expiry after 24 h, abandoned in-flight claims taken over (same body only), pruning', async () => {
        const p = await newProject()
        assert.equal((await claimAt(p, 'done', 'f', T0)).kind, 'claimed')
        await store.completeIdempotencyKey(p, 'done', 200, 'x')
        assert.equal((await claimAt(p, 'stuck', 'f', T0)).kind, 'claimed')
        const later = T0 + 61_000
        assert.equal((await claimAt(p, 'stuck', 'g', later)).kind, 'mismatch', 'a stranger body never takes over')
        assert.equal((await claimAt(p, 'stuck', 'f', later)).kind, 'claimed', 'the same body retried takes over')
        assert.equal((await claimAt(p, 'done', 'g', T0 + 24 * 3_600_000 - 1)).kind, 'mismatch')
        assert.equal((await claimAt(p, 'done', 'g', T0 + 24 * 3_600_000 + 1)).kind, 'claimed', 'expired: free')
        await store.completeIdempotencyKey(p, 'done', 200, 'y')
        const pruned = await store.pruneIdempotencyKeys(new Date(T0 + 3_600_000))
        assert.ok(pruned >= 1, `pruned ${pruned}`)
        assert.equal((await claimAt(p, 'stuck', 'h', T0 + 2)).kind, 'claimed', 'pruned: free')
        assert.equal((await claimAt(p, 'done', 'h', T0 + 2)).kind, 'mismatch', 'newer than the cutoff: kept')
      })

      test('racing claims of one key: exactly one wins', async () => {
        const p = await newProject()
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => claimAt(p, 'race', 'f', T0 + i)))
        assert.equal(results.filter((r) => r.kind === 'claimed').length, 1)
        assert.equal(results.filter((r) => r.kind === 'in_flight').length, 7)
      })
    })

    test('per-project rate limit: set, read through the key, back to the default', async () => {
      const name = `rl-${randomBytes(4).toString('hex')}`
      const project = await store.ensureProject(name)
      const key = generateApiKey()
      await store.createKey({ projectId: project.id, label: 'k', scopes: ['profiles:write'], hash: key.hash })
      assert.equal((await store.findKeyByHash(key.hash))?.projectRateLimit, null)
      assert.deepEqual(await store.setProjectRateLimit(name, 42), { project, rateLimit: 42 })
      assert.equal((await store.findKeyByHash(key.hash))?.projectRateLimit, 42)
      assert.equal((await store.setProjectRateLimit(name, null))?.rateLimit, null)
      assert.equal((await store.findKeyByHash(key.hash))?.projectRateLimit, null)
      assert.equal(await store.setProjectRateLimit(`${name}-none`, 5), undefined)
    })

    if (shareable)
      describe('several processes on one database', () => {
        test('a second store sees committed writes, and the change feed misses nothing from either', async () => {
          assert.ok(fx.openSecond, 'a shareable fixture opens a second store')
          const second = await fx.openSecond()
          try {
            const p = await newProject()
            const start = (await readAll(store, p, null)).token
            const writes: Promise<unknown>[] = []
            for (let i = 0; i < 20; i++) {
              const s = i % 2 === 0 ? store : second
              writes.push(s.applyUpload(p, batch([`m${i}`, { from: String(i % 2) }], ['shared', { [`k${i}`]: 'v' }])))
            }
            await Promise.all(writes)
            await second.deleteProfile(p, 'm3')
            assert.deepEqual(plain(await store.getProfile(p, 'm1')), { from: '1' })
            const changes = await readAll(second, p, start)
            assert.equal(changes.upserts.size, 20)
            assert.deepEqual([...changes.deleted], ['m3'])
            assert.equal(Object.keys(changes.upserts.get('shared')?.attributes ?? {}).length, 20)
          } finally {
            await second.close()
          }
        })
      })

    // ---- Administration (issue 8) ----

    test('admin projects: create refuses a taken name, rename keeps the id, list counts users and last upload', async () => {
      const name = `adm-${randomBytes(4).toString('hex')}`
      const p = await store.createProject(name)
      await assert.rejects(store.createProject(name), (e: unknown) => (e as { code?: string }).code === 'CONFLICT')
      assert.deepEqual(await store.getProject(p.id), p)
      assert.equal(await store.getProject(999_999_999), undefined)
      const other = await store.createProject(`${name}-b`)
      await assert.rejects(
        store.renameProject(other.id, name),
        (e: unknown) => (e as { code?: string }).code === 'CONFLICT',
      )
      const renamed = await store.renameProject(p.id, `${name}-renamed`)
      assert.deepEqual(renamed, { ...p, name: `${name}-renamed` })
      assert.equal(await store.renameProject(999_999_999, `${name}-x`), undefined)
      await store.applyUpload(p.id, batch(['u1', { a: '1' }], ['u2', { a: '2' }]))
      let listed = (await store.listProjects()).find((x) => x.id === p.id)
      assert.deepEqual({ users: listed?.users, last: listed?.lastUploadAt }, { users: 2, last: null })
      const at = Date.parse('2026-01-02T03:04:05.678Z')
      await store.appendRequestLog([logEntry(p.id, { time: at, upload: true })])
      await store.appendRequestLog([logEntry(p.id, { time: at - 1000, upload: true })])
      listed = (await store.listProjects()).find((x) => x.id === p.id)
      assert.equal(listed?.lastUploadAt, '2026-01-02T03:04:05.678Z', 'the latest upload wins, whatever the order')
      await store.applyUpload(p.id, batch(['u2', { a: '3' }], ['u3', { a: '3' }]))
      await store.deleteProfile(p.id, 'u1')
      await store.deleteProfile(p.id, 'u1')
      listed = (await store.listProjects()).find((x) => x.id === p.id)
      assert.equal(listed?.users, 2, 'created users counted once, deletions subtracted once')
      assert.equal(listed?.users, await store.countProfiles(p.id))
    })

    test('key rotation: a new key, the old one expires at the grace end; revoked or foreign keys are refused', async () => {
      const p = await newProject()
      const q = await newProject()
      const old = await store.createKey({
        projectId: p,
        label: 'ci',
        scopes: ['profiles:write'],
        hash: generateApiKey().hash,
      })
      assert.equal(old.expiresAt, null)
      const until = new Date(Date.now() + 3600_000)
      const fresh = generateApiKey()
      assert.equal(
        await store.rotateKey(
          q,
          old.id,
          { projectId: q, label: 'x', scopes: ['profiles:read'], hash: fresh.hash },
          until,
        ),
        undefined,
      )
      const r = await store.rotateKey(
        p,
        old.id,
        { projectId: p, label: 'ci', scopes: ['profiles:write'], hash: fresh.hash },
        until,
      )
      assert.ok(r !== undefined)
      assert.equal(r.previous.id, old.id)
      assert.equal(r.previous.expiresAt, until.toISOString())
      assert.equal(r.key.expiresAt, null)
      assert.deepEqual([r.key.label, r.key.scopes], ['ci', ['profiles:write']])
      assert.equal((await store.findKeyByHash(fresh.hash))?.id, r.key.id)
      // Rotating again with a longer grace never extends the old key's life.
      const later = new Date(Date.now() + 7200_000)
      const again = await store.rotateKey(
        p,
        old.id,
        { projectId: p, label: 'ci', scopes: ['profiles:write'], hash: generateApiKey().hash },
        later,
      )
      assert.equal(again?.previous.expiresAt, until.toISOString())
      await store.revokeKey(r.key.id)
      await assert.rejects(
        store.rotateKey(
          p,
          r.key.id,
          { projectId: p, label: 'ci', scopes: ['profiles:write'], hash: generateApiKey().hash },
          until,
        ),
        (e: unknown) => (e as { code?: string }).code === 'CONFLICT',
      )
      assert.equal((await store.getKey(old.id))?.expiresAt, until.toISOString())
      assert.equal(await store.getKey('key_0000000000000000'), undefined)
    })

    test('key events are kept per project, newest first', async () => {
      const p = await newProject()
      await store.addKeyEvent({ projectId: p, keyId: 'key_a', event: 'created', actor: 'cli' })
      await store.addKeyEvent({ projectId: p, keyId: 'key_a', event: 'rotated', actor: 'session', detail: 'replaced' })
      const events = await store.listKeyEvents(p, 10)
      assert.deepEqual(
        events.map((e) => [e.keyId, e.event, e.actor, e.detail]),
        [
          ['key_a', 'rotated', 'session', 'replaced'],
          ['key_a', 'created', 'cli', ''],
        ],
      )
      assert.deepEqual(await store.listKeyEvents(await newProject(), 10), [])
    })

    test('admin settings, tokens and sessions', async () => {
      const name = `s-${randomBytes(4).toString('hex')}`
      assert.equal(await store.getSetting(name), undefined)
      await store.setSetting(name, 'one')
      await store.setSetting(name, 'two')
      assert.equal(await store.getSetting(name), 'two')

      const { hash } = generateApiKey()
      const token = await store.createAdminToken({ label: 'ci', hash })
      assert.match(token.id, /^tok_[0-9a-f]{16}$/)
      assert.deepEqual(await store.findAdminTokenByHash(hash), token)
      assert.ok((await store.listAdminTokens()).some((t) => t.id === token.id))
      await store.touchAdminToken(token.id, new Date('2030-01-01T00:00:00.000Z'))
      assert.equal((await store.findAdminTokenByHash(hash))?.lastUsedAt, '2030-01-01T00:00:00.000Z')
      assert.equal(await store.revokeAdminToken(token.id), true)
      assert.equal(await store.revokeAdminToken(token.id), false)
      assert.notEqual((await store.findAdminTokenByHash(hash))?.revokedAt, null)

      const idHash = generateApiKey().hash
      const expires = new Date(Date.now() + 60_000)
      await store.createSession({ idHash, csrfToken: 'csrf', expiresAt: expires })
      assert.equal((await store.findSession(idHash))?.expiresAt, expires.toISOString())
      const later = new Date(expires.getTime() + 60_000)
      await store.extendSession(idHash, later)
      await store.extendSession(idHash, expires)
      assert.equal((await store.findSession(idHash))?.expiresAt, later.toISOString(), 'extending never shortens')
      await store.deleteSession(idHash)
      assert.equal(await store.findSession(idHash), undefined)
    })

    test('login failures count per address and overall, within a window', async () => {
      const ip = `10.${randomBytes(3).join('.')}`
      const t0 = new Date('2031-05-05T00:00:00.000Z')
      await store.recordLoginFailure(ip, t0)
      await store.recordLoginFailure(ip, new Date(t0.getTime() + 1000))
      await store.recordLoginFailure(`${ip}9`, new Date(t0.getTime() + 2000))
      assert.deepEqual(await store.countLoginFailures(ip, t0), { count: 2, oldest: t0.toISOString() })
      assert.deepEqual((await store.countLoginFailures(ip, new Date(t0.getTime() + 500))).count, 1)
      assert.ok((await store.countLoginFailures(null, t0)).count >= 3)
      await store.clearLoginFailures(ip)
      assert.equal((await store.countLoginFailures(ip, t0)).count, 0)
      assert.equal((await store.countLoginFailures(`${ip}9`, t0)).count, 1)
    })

    test('request log: newest first, filters, keyset paging, bounded by count and age', async () => {
      const p = await newProject()
      const base = Date.now()
      const entries = Array.from({ length: 30 }, (_, i) =>
        logEntry(p, {
          time: base + i,
          status: i % 3 === 0 ? 400 : 200,
          keyId: i % 2 === 0 ? 'key_even' : 'key_odd',
          error: i % 3 === 0 ? `values[${i}][1]: bad` : null,
        }),
      )
      await store.appendRequestLog(entries)
      const all = await store.listRequestLog(p, { limit: 100 })
      assert.equal(all.length, 30)
      assert.deepEqual(
        all.map((r) => Date.parse(r.time)),
        entries.map((e) => e.time).reverse(),
      )
      assert.ok(all.every((r, i) => i === 0 || r.id < (all[i - 1] as { id: number }).id))
      const first = all[29] as (typeof all)[number]
      assert.deepEqual(
        { ...first, id: 0 },
        {
          id: 0,
          projectId: p,
          time: new Date(base).toISOString(),
          method: 'POST',
          path: '/v1/user/profiles',
          keyId: 'key_even',
          keyLabel: 'ci',
          requestId: 'req-1',
          status: 400,
          durationMs: 1.5,
          usersCreated: 1,
          usersUpdated: 2,
          error: 'values[0][1]: bad',
          dryRun: false,
        },
      )
      const failed = await store.listRequestLog(p, { limit: 100, statusClass: 4 })
      assert.equal(failed.length, 10)
      assert.ok(failed.every((r) => r.status === 400 && r.error !== null))
      assert.equal((await store.listRequestLog(p, { limit: 100, statusClass: 5 })).length, 0)
      assert.equal((await store.listRequestLog(p, { limit: 100, keyId: 'key_odd' })).length, 15)
      const page = await store.listRequestLog(p, { limit: 10, before: (all[9] as { id: number }).id })
      assert.deepEqual(
        page.map((r) => r.id),
        all.slice(10, 20).map((r) => r.id),
      )
      const newer = await store.listRequestLog(p, { limit: 100, after: (all[3] as { id: number }).id })
      assert.deepEqual(
        newer.map((r) => r.id),
        all.slice(0, 3).map((r) => r.id),
      )
      assert.deepEqual(await store.listRequestLog(await newProject(), { limit: 10 }), [])

      await store.pruneAdminData({ maxPerProject: 12, olderThan: new Date(base + 5), now: new Date() })
      const kept = await store.listRequestLog(p, { limit: 100 })
      assert.deepEqual(
        kept.map((r) => r.id),
        all.slice(0, 12).map((r) => r.id),
        'the 12 newest stay',
      )
      await store.pruneAdminData({ maxPerProject: 100, olderThan: new Date(base + 25), now: new Date() })
      assert.equal((await store.listRequestLog(p, { limit: 100 })).length, 5, 'and none older than the cut')
    })

    test('pruning drops expired sessions', async () => {
      const idHash = generateApiKey().hash
      await store.createSession({ idHash, csrfToken: 'c', expiresAt: new Date(Date.now() - 1000) })
      await store.pruneAdminData({ maxPerProject: 10_000, olderThan: new Date(0), now: new Date() })
      assert.equal(await store.findSession(idHash), undefined)
    })

    test('listUsers: code point order, prefix as a range, keyset paging', async () => {
      const p = await newProject()
      const ids = ['a', 'ab', 'abc', 'abd', 'ac', 'b', 'a\u{10FFFF}', 'a\u{10FFFF}z', 'é', 'éa']
      await store.applyUpload(p, batch(...ids.map((id): [string, Record<string, string>] => [id, { x: '1' }])))
      const list = async (options: { prefix?: string; afterUserId?: string; limit: number }) =>
        (await store.listUsers(p, options)).map((u) => u.userId)
      assert.deepEqual(await list({ limit: 100 }), [...ids].sort(compareCodePoints))
      assert.deepEqual(await list({ prefix: 'ab', limit: 100 }), ['ab', 'abc', 'abd'])
      assert.deepEqual(await list({ prefix: 'a\u{10FFFF}', limit: 100 }), ['a\u{10FFFF}', 'a\u{10FFFF}z'])
      assert.deepEqual(await list({ prefix: 'é', limit: 100 }), ['é', 'éa'])
      assert.deepEqual(await list({ prefix: 'a', limit: 2 }), ['a', 'ab'])
      assert.deepEqual(await list({ prefix: 'a', afterUserId: 'ab', limit: 2 }), ['abc', 'abd'])
      assert.deepEqual(await list({ prefix: 'zz', limit: 5 }), [])
      const one = (await store.listUsers(p, { prefix: 'b', limit: 1 }))[0]
      assert.match(one?.createdAt ?? '', /Z$/)
    })

    if (shareable) {
      test('sessions and the request log are shared by every process on the database', async () => {
        if (fx.openSecond === undefined) return
        const second = await fx.openSecond()
        try {
          const p = await newProject()
          const idHash = generateApiKey().hash
          await store.createSession({ idHash, csrfToken: 'shared', expiresAt: new Date(Date.now() + 60_000) })
          assert.equal((await second.findSession(idHash))?.csrfToken, 'shared')
          await second.appendRequestLog([logEntry(p, { requestId: 'from-second' })])
          assert.deepEqual(
            (await store.listRequestLog(p, { limit: 5 })).map((r) => r.requestId),
            ['from-second'],
          )
        } finally {
          await second.close()
        }
      })
    }
  })
}
