import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { TraitbaseError } from '../../core/errors.js'
import { hashApiKey } from '../../storage/api-keys.js'
import { openStore } from '../../storage/open-store.js'
import type { Store } from '../../storage/store.js'
import { createMemoryOutput, type MemoryOutput } from '../output.js'
import { createKey, listKeys, revokeKey } from './keys.js'

describe('keys commands (in-process, SQLite in memory)', () => {
  let store: Store
  let out: MemoryOutput
  beforeEach(async () => {
    store = await openStore('sqlite::memory:')
    out = createMemoryOutput()
  })
  afterEach(() => store.close())

  const rejects = (promise: Promise<unknown>, message: RegExp): Promise<void> =>
    assert.rejects(promise, (e: unknown) => e instanceof TraitbaseError && message.test(e.message))

  test('create: secret is the last line, hash is what the store holds, names are trimmed', async () => {
    const key = await createKey({ store, out, project: '  shop ', label: ' web ' })
    const secret = out.stdout.at(-1) ?? ''
    assert.match(secret, /^tbk_[A-Za-z0-9_-]{43}$/)
    assert.equal(key.hash, hashApiKey(secret))
    assert.equal(key.label, 'web')
    assert.equal(key.projectName, 'shop')
    assert.deepEqual(key.scopes, ['profiles:write', 'profiles:read'])
    assert.deepEqual(out.stderr, [])
  })

  test('create refuses bad scopes, names and labels before touching the store', async () => {
    await rejects(createKey({ store, out, project: 'p', scopes: 'profiles:admin' }), /^--scopes: unknown scope/)
    await rejects(createKey({ store, out, project: '' }), /^project name must not be empty$/)
    await rejects(createKey({ store, out, project: 'x'.repeat(201) }), /longer than 200 characters/)
    await rejects(createKey({ store, out, project: 'a\nb' }), /control characters/)
    await rejects(createKey({ store, out, project: 'p', label: '\u0007' }), /control characters/)
    assert.equal(await store.findProject('p'), undefined)
    assert.deepEqual(out.stdout, [])
    await createKey({ store, out, project: 'x'.repeat(200) })
    assert.match(out.stdout.at(-1) ?? '', /^tbk_/)
  })

  test('list --json: exactly the seven documented fields, in creation order', async () => {
    await createKey({ store, out, project: 'p', label: 'a' })
    // Keys list oldest first by creation time (millisecond resolution; ties fall back to the key id).
    await new Promise((resolve) => setTimeout(resolve, 5))
    await createKey({ store, out, project: 'p', label: 'b', scopes: 'profiles:read' })
    const json = createMemoryOutput()
    const listing = await listKeys({ store, out: json, project: 'p', json: true })
    assert.deepEqual(JSON.parse(json.stdout.join('\n')), listing)
    assert.deepEqual(
      listing.map((k) => [k.label, k.scopes]),
      [
        ['a', ['profiles:write', 'profiles:read']],
        ['b', ['profiles:read']],
      ],
    )
    for (const k of listing) {
      assert.deepEqual(Object.keys(k), [
        'id',
        'label',
        'scopes',
        'created_at',
        'last_used_at',
        'revoked_at',
        'expires_at',
      ])
    }
  })

  test('list: a project without keys says so; an unknown project is NOT_FOUND', async () => {
    await store.ensureProject('empty')
    await listKeys({ store, out, project: 'empty' })
    assert.deepEqual(out.stdout, ['Project "empty" has no keys.'])
    await assert.rejects(
      listKeys({ store, out, project: 'nope' }),
      (e: unknown) => e instanceof TraitbaseError && e.code === 'NOT_FOUND',
    )
  })

  test('revoke: once, then NOT_FOUND; the table shows when', async () => {
    const key = await createKey({ store, out, project: 'p' })
    await revokeKey({ store, out, keyId: ` ${key.id} ` })
    await rejects(revokeKey({ store, out, keyId: key.id }), /unknown or already revoked/)
    await rejects(revokeKey({ store, out, keyId: ' ' }), /^KEY_ID must not be empty$/)
    const table = createMemoryOutput()
    await listKeys({ store, out: table, project: 'p' })
    assert.equal(table.stdout.length, 2)
    assert.match(
      table.stdout[1] ?? '',
      /^key_[0-9a-f]{16}\s+-\s+profiles:write,profiles:read\s+\S+Z\s+never\s+\S+Z\s+-$/,
    )
  })
})
