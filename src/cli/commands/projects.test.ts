import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { openStore } from '../../storage/open-store.js'
import type { Store } from '../../storage/store.js'
import { createMemoryOutput, type MemoryOutput } from '../output.js'
import { createKey } from './keys.js'
import { isolateProject, NeedsCitusError, setRateLimit } from './projects.js'
import { createTestDatabase } from '../../storage/postgres/test-database.js'
import { parseUploadBody } from '../../core/upload.js'

describe('projects rate-limit (in-process, SQLite in memory)', () => {
  let store: Store
  let out: MemoryOutput
  beforeEach(async () => {
    store = await openStore('sqlite::memory:')
    out = createMemoryOutput()
  })
  afterEach(() => store.close())

  test('stores N, 0 (none) or default (null) on the project; every key of it sees the limit', async () => {
    const key = await createKey({ store, out, project: 'shop' })
    const limitOf = async () => (await store.findKeyByHash(key.hash))?.projectRateLimit
    assert.equal(await setRateLimit({ store, out, project: 'shop', limit: '120' }), 120)
    assert.equal(await limitOf(), 120)
    assert.equal(out.stdout.at(-1), 'Project "shop": 120 requests per minute per key.')
    assert.equal(await setRateLimit({ store, out, project: 'shop', limit: '0' }), 0)
    assert.equal(await limitOf(), 0)
    assert.equal(await setRateLimit({ store, out, project: 'shop', limit: 'default' }), null)
    assert.equal(await limitOf(), null)
    assert.match(out.stdout.at(-1) ?? '', /back to the server's RATE_LIMIT/)
  })

  test('bad limits and unknown projects: a clear error, nothing changed', async () => {
    const key = await createKey({ store, out, project: 'shop' })
    await setRateLimit({ store, out, project: 'shop', limit: '7' })
    for (const bad of ['-1', '1.5', 'lots', '', '99999999999']) {
      await assert.rejects(
        setRateLimit({ store, out, project: 'shop', limit: bad }),
        (e: unknown) => e instanceof TraitbaseError && /LIMIT must be requests per minute/.test(e.message),
      )
    }
    await assert.rejects(
      setRateLimit({ store, out, project: 'nope', limit: '5' }),
      (e: unknown) => e instanceof TraitbaseError && e.message === 'No project named "nope"',
    )
    assert.equal((await store.findKeyByHash(key.hash))?.projectRateLimit, 7)
  })
})

describe('projects isolate', () => {
  test('SQLite and plain PostgreSQL: NeedsCitusError (exit 2); Citus: the project gets a shard of its own', async (t) => {
    const out = createMemoryOutput()
    const sqlite = await openStore('sqlite::memory:')
    await sqlite.ensureProject('big')
    await assert.rejects(isolateProject({ store: sqlite, out, project: 'big' }), NeedsCitusError)
    await assert.rejects(isolateProject({ store: sqlite, out, project: 'nope' }), /No project named "nope"/)
    await sqlite.close()

    for (const backend of ['postgres', 'citus'] as const) {
      const db = await createTestDatabase(backend)
      if ('skip' in db) {
        t.diagnostic(`${backend} skipped: ${db.skip}`)
        continue
      }
      const store = await openStore(db.url)
      try {
        const project = await store.ensureProject('big')
        await store.ensureProject('small')
        await store.applyUpload(
          project.id,
          parseBatch([
            ['u1', 'a'],
            ['u2', 'b'],
          ]),
        )
        if (backend === 'postgres') {
          await assert.rejects(isolateProject({ store, out, project: 'big' }), NeedsCitusError)
          continue
        }
        await isolateProject({ store, out, project: 'big' })
        assert.match(out.stdout.at(-1) ?? '', /^Project "big" now alone on shard \d+ on worker :\d+/)
        assert.equal((await store.getProfile(project.id, 'u2'))?.attributes['plan'], 'b', 'data moved with it')
      } finally {
        await store.close()
        await db.drop()
      }
    }
  })
})

function parseBatch(rows: [string, string][]) {
  const parsed = parseUploadBody({ field_name: ['user_id', 'plan'], values: rows })
  assert.ok(parsed.ok)
  return parsed.value
}
