import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { openStore } from '../../storage/open-store.js'
import type { Store } from '../../storage/store.js'
import { createMemoryOutput, type MemoryOutput } from '../output.js'
import { projectTimeZone } from './projects.js'

describe('projects timezone (in-process, SQLite in memory)', () => {
  let store: Store
  let out: MemoryOutput
  beforeEach(async () => {
    store = await openStore('sqlite::memory:')
    out = createMemoryOutput()
  })
  afterEach(() => store.close())

  test('prints UTC by default, sets a zone in canonical spelling, prints it back', async () => {
    const { id } = await store.ensureProject('shop')
    assert.equal(await projectTimeZone({ store, out, project: 'shop' }), 'UTC')
    assert.equal(await projectTimeZone({ store, out, project: 'shop', timeZone: 'asia/tokyo' }), 'Asia/Tokyo')
    assert.equal(await store.getProjectTimeZone(id), 'Asia/Tokyo')
    assert.equal(await projectTimeZone({ store, out, project: 'shop' }), 'Asia/Tokyo')
    assert.deepEqual(out.stdout, ['UTC', 'Project "shop" now uses time zone Asia/Tokyo.', 'Asia/Tokyo'])
  })

  test('a bad zone or an unknown project is a clear error and changes nothing', async () => {
    const { id } = await store.ensureProject('shop')
    await assert.rejects(
      projectTimeZone({ store, out, project: 'shop', timeZone: 'Tokyo' }),
      (e: unknown) => e instanceof TraitbaseError && /^ZONE: must be an IANA time zone name/.test(e.message),
    )
    assert.equal(await store.getProjectTimeZone(id), 'UTC')
    await assert.rejects(
      projectTimeZone({ store, out, project: 'nope', timeZone: 'UTC' }),
      (e: unknown) => e instanceof TraitbaseError && /no project named "nope"/.test(e.message),
    )
    assert.equal(await store.findProject('nope'), undefined)
  })
})
