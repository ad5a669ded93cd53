import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { openStore } from '../../storage/open-store.js'
import type { Store } from '../../storage/store.js'
import { createMemoryOutput, type MemoryOutput } from '../output.js'
import { indexAttributes } from './projects.js'

describe('projects index (in-process, SQLite in memory)', () => {
  let store: Store
  let out: MemoryOutput
  beforeEach(async () => {
    store = await openStore('sqlite::memory:')
    out = createMemoryOutput()
  })
  afterEach(() => store.close())

  test('builds, lists and drops indexes; a second build says it exists', async () => {
    const { id } = await store.ensureProject('shop')
    const now = () => 0
    await indexAttributes({ store, out, project: 'shop', attributes: [], now })
    await indexAttributes({ store, out, project: 'shop', attributes: ['plan', 'country'], now })
    await indexAttributes({ store, out, project: 'shop', attributes: ['ltv'], kind: 'number', now })
    await indexAttributes({ store, out, project: 'shop', attributes: ['plan'], now })
    assert.deepEqual(
      (await store.listAttributeIndexes(id)).map((i) => `${i.name}/${i.kind}`),
      ['country/text', 'ltv/number', 'plan/text'],
    )
    await indexAttributes({ store, out, project: 'shop', attributes: [], now })
    await indexAttributes({ store, out, project: 'shop', attributes: ['plan', 'ltv'], drop: true, now })
    assert.deepEqual(
      (await store.listAttributeIndexes(id)).map((i) => `${i.name}/${i.kind}`),
      ['country/text', 'ltv/number'],
    )
    assert.equal(out.stdout[0], 'Project "shop" has no attribute indexes.')
    assert.equal(out.stdout[1], 'Project "shop": built the text index on "plan" in 0.0 s.')
    assert.equal(out.stdout[4], 'Project "shop": "plan" already has a text index.')
    assert.match(out.stdout[5] as string, /^country\ttext\ttb_attr_\d+_t_[0-9a-f]{16}\tcreated /)
    assert.equal(out.stdout.at(-2), 'Project "shop": dropped the text index on "plan".')
    assert.equal(out.stdout.at(-1), 'Project "shop": there was no text index on "ltv".')
    // Building on SQLite says what it costs and what it does not buy (once per build command, not on --drop).
    assert.equal(out.stderr.length, 3)
    for (const line of out.stderr)
      assert.match(line, /^note: on SQLite every attribute index costs uploads .* index what you segment by/)
  })

  test('an unknown project, a bad name or kind is a clear error and builds nothing', async () => {
    const { id } = await store.ensureProject('shop')
    const fails = async (options: Partial<Parameters<typeof indexAttributes>[0]>, message: RegExp) =>
      assert.rejects(
        indexAttributes({ store, out, project: 'shop', attributes: ['plan'], ...options }),
        (e: unknown) => e instanceof TraitbaseError && message.test(e.message),
      )
    await fails({ project: 'nope' }, /no project named "nope"/)
    await fails({ attributes: ['plan', 'user_id'] }, /"user_id" is the user id/)
    await fails({ attributes: ['x'.repeat(51)] }, /longer than 50 characters/)
    await fails({ kind: 'date' }, /An index kind is "text" or "number", got "date"/)
    await fails({ attributes: [], drop: true }, /--drop needs the ATTRIBUTE names/)
    assert.deepEqual(await store.listAttributeIndexes(id), [])
    assert.equal(await store.findProject('nope'), undefined)
  })
})
