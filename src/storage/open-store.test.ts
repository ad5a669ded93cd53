import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, describe, test } from 'node:test'
import { DEFAULT_DATABASE_URL, openStore, parseDatabaseUrl } from './open-store.js'

const dir = mkdtempSync(join(tmpdir(), 'traitbase-open-'))
after(() => rmSync(dir, { recursive: true, force: true }))

describe('parseDatabaseUrl', () => {
  test('sqlite paths resolve against the working directory; :memory: stays', () => {
    assert.deepEqual(parseDatabaseUrl('sqlite:./data/x.db'), { kind: 'sqlite', filename: resolve('data/x.db') })
    assert.deepEqual(parseDatabaseUrl('sqlite:/abs/y.db'), { kind: 'sqlite', filename: '/abs/y.db' })
    assert.deepEqual(parseDatabaseUrl('sqlite::memory:'), { kind: 'sqlite', filename: ':memory:' })
    assert.equal(parseDatabaseUrl(DEFAULT_DATABASE_URL).kind, 'sqlite')
  })

  test('postgres:// and postgresql:// select PostgreSQL', () => {
    assert.deepEqual(parseDatabaseUrl('postgres://u@h/db'), { kind: 'postgres', url: 'postgres://u@h/db' })
    assert.deepEqual(parseDatabaseUrl('postgresql://u@h/db'), { kind: 'postgres', url: 'postgresql://u@h/db' })
  })

  test('anything else is refused with a message that lists what works and hides passwords', () => {
    assert.throws(
      () => parseDatabaseUrl('mysql://root:secret@h/db'),
      (error: Error) => {
        assert.match(error.message, /sqlite:PATH/)
        assert.match(error.message, /postgres:\/\//)
        assert.doesNotMatch(error.message, /secret/)
        return true
      },
    )
    assert.throws(() => parseDatabaseUrl('sqlite:'), /needs a path/)
    assert.throws(() => parseDatabaseUrl(''), /Unsupported DATABASE_URL/)
    assert.throws(() => parseDatabaseUrl('./data/traitbase.db'), /Unsupported DATABASE_URL/)
  })
})

describe('openStore', () => {
  test('opens, migrates and creates the folder of an SQLite file', async () => {
    const filename = join(dir, 'a', 'b', 'store.db')
    const store = await openStore(`sqlite:${filename}`)
    assert.equal(store.kind, 'sqlite')
    assert.ok(existsSync(filename))
    assert.equal(await store.findProject('none'), undefined)
    await store.close()
  })

  test('refuses an unsupported URL before touching anything', async () => {
    await assert.rejects(openStore('redis://localhost'), /Unsupported DATABASE_URL/)
  })

  test('an unreachable PostgreSQL fails with the connection error, not a hang', async () => {
    await assert.rejects(openStore('postgres://postgres@127.0.0.1:1/none'), /ECONNREFUSED|connect/)
  })
})
