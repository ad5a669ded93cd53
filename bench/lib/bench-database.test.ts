import assert from 'node:assert/strict'
import { existsSync, writeFileSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { test } from 'node:test'
import pg from 'pg'
import { createTestDatabase } from '../../src/storage/postgres/test-database.js'
import { createBenchDatabase } from './bench-database.js'

test('SQLite bench databases: copy carries the file and its WAL; dropping all removes the folder', async () => {
  const template = await createBenchDatabase(undefined, 'template')
  const file = template.url.slice('sqlite:'.length)
  writeFileSync(file, 'main')
  writeFileSync(`${file}-wal`, 'wal')
  const copy = await template.copy('http')
  const copied = copy.url.slice('sqlite:'.length)
  assert.notEqual(copied, file)
  assert.equal(readFileSync(copied, 'utf8'), 'main')
  assert.equal(readFileSync(`${copied}-wal`, 'utf8'), 'wal')
  await template.drop()
  assert.equal(existsSync(file), false)
  assert.ok(existsSync(copied), 'other copies survive')
  await copy.drop()
  assert.equal(existsSync(dirname(file)), false)
})

test('PostgreSQL bench databases: copy has the content; drop removes them', async (t) => {
  const probe = await createTestDatabase()
  if ('skip' in probe) return t.skip(probe.skip)
  await probe.drop()
  const serverUrl = process.env['TEST_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/test'
  const query = async (url: string, sql: string): Promise<unknown[]> => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(sql)).rows
    } finally {
      await client.end()
    }
  }
  const template = await createBenchDatabase(serverUrl, 'template')
  const copies = [template]
  try {
    await query(template.url, 'CREATE TABLE t (x int); INSERT INTO t VALUES (42)')
    const copy = await template.copy('direct')
    copies.push(copy)
    assert.deepEqual(await query(copy.url, 'SELECT x FROM t'), [{ x: 42 }])
  } finally {
    for (const db of copies) await db.drop()
  }
  const names = copies.map((db) => new URL(db.url).pathname.slice(1))
  const left = await query(serverUrl, `SELECT datname FROM pg_database WHERE datname IN ('${names.join("','")}')`)
  assert.deepEqual(left, [])
})

test('Citus bench databases: schemas; a copy is migrated and distributed, with the content; drop removes them', async (t) => {
  const probe = await createTestDatabase('citus')
  if ('skip' in probe) return t.skip(probe.skip)
  await probe.drop()
  const serverUrl = process.env['TEST_CITUS_URL'] || 'postgres://postgres@127.0.0.1:5433/postgres'
  const query = async (url: string, sql: string): Promise<unknown[]> => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(sql)).rows
    } finally {
      await client.end()
    }
  }
  const template = await createBenchDatabase(serverUrl, 'template')
  const copies = [template]
  try {
    const { openStore } = await import('../../src/storage/open-store.js')
    const store = await openStore(template.url)
    const p = await store.ensureProject('copied')
    await store.applyUpload(p.id, {
      rows: 1,
      patches: [{ userId: 'u', attributes: Object.assign(Object.create(null), { a: '1' }) }],
    })
    await store.close()
    const copy = await template.copy('http')
    copies.push(copy)
    assert.notEqual(copy.url, template.url)
    assert.deepEqual(await query(copy.url, 'SELECT user_id, attributes FROM profiles'), [
      { user_id: 'u', attributes: { a: '1' } },
    ])
    const dist = await query(copy.url, `SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'profiles'::regclass`)
    assert.equal(dist.length, 1, 'the copy is distributed')
  } finally {
    for (const db of copies) await db.drop()
  }
  const schemas = copies.map((db) => /search_path%3D(\w+)/.exec(db.url)?.[1] ?? '')
  const left = await query(serverUrl, `SELECT nspname FROM pg_namespace WHERE nspname IN ('${schemas.join("','")}')`)
  assert.deepEqual(left, [])
})
