import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { openStore } from '../../storage/open-store.js'
import type { Store } from '../../storage/store.js'
import { createMemoryOutput, type MemoryOutput } from '../output.js'
import { createKey } from './keys.js'
import { setRateLimit } from './projects.js'

describe('projects set-rate-limit (in-process, SQLite in memory)', () => {
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
