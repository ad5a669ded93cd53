import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { parseUploadBody } from '../../core/upload.js'
import { Checkpointer } from './sqlite-checkpointer.js'
import { SqliteStore } from './sqlite-store.js'

const dir = mkdtempSync(join(tmpdir(), 'traitbase-ckpt-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
function openWalDatabase(): { db: Database.Database; filename: string; write: () => void } {
  const filename = join(dir, `wal-${files++}.db`)
  const db = new Database(filename)
  db.pragma('journal_mode = WAL')
  db.pragma('wal_autocheckpoint = 0')
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
  // About 25 pages of 4 KiB per transaction.
  const write = db.transaction(() => {
    for (let i = 0; i < 50; i++) insert.run('x'.repeat(2000))
  })
  return { db, filename, write }
}

/** The WAL file only grows: a write that restarts the WAL overwrites it from the start instead. */
function walBytes(filename: string): number {
  return statSync(`${filename}-wal`).size
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

test('after catchUp() the next write restarts the WAL from its start; without it the WAL keeps growing', async () => {
  const withCatchUp = openWalDatabase()
  const without = openWalDatabase()
  // A long interval: only the explicit catch-up checkpoints here, so the outcome does not depend on timing.
  const checkpointer = new Checkpointer({ filename: withCatchUp.filename, intervalMs: 60_000 })
  for (let i = 0; i < 40; i++) {
    withCatchUp.write()
    without.write()
  }
  const before = walBytes(withCatchUp.filename)
  assert.equal(walBytes(without.filename), before)
  assert.ok(before > 40 * 25 * 4096, `the WAL holds ${before} bytes after 40 writes`)
  await checkpointer.catchUp()
  withCatchUp.write()
  without.write()
  assert.equal(walBytes(withCatchUp.filename), before, 'after catch-up the write restarted the WAL from its start')
  assert.ok(walBytes(without.filename) > before, 'without catch-up the write was appended')
  await checkpointer.stop()
  assert.equal(withCatchUp.db.prepare('SELECT count(*) FROM t').pluck().get(), 41 * 50)
  withCatchUp.db.close()
  without.db.close()
})

test('shouldCatchUp turns on once the worker reports more WAL frames than restartFrames, and off after catchUp()', async () => {
  const { db, filename, write } = openWalDatabase()
  const checkpointer = new Checkpointer({ filename, intervalMs: 5, restartFrames: 100 })
  assert.equal(checkpointer.shouldCatchUp, false)
  // Keep writing until a report sees more than 100 frames the background checkpoints have not restarted.
  await waitFor(() => {
    if (!checkpointer.shouldCatchUp) for (let i = 0; i < 8; i++) write()
    return checkpointer.shouldCatchUp
  }, 'the worker reports a long WAL')
  await checkpointer.catchUp()
  assert.equal(checkpointer.shouldCatchUp, false)
  await checkpointer.stop()
  assert.equal(checkpointer.shouldCatchUp, false, 'a stopped checkpointer never asks the writer to wait')
  db.close()
})

test('a worker that dies calls onFailure, never blocks the writer, and the store falls back to auto-checkpoints', async () => {
  const { db, filename, write } = openWalDatabase()
  let failures = 0
  const checkpointer = new Checkpointer({ filename, intervalMs: 5, restartFrames: 1, onFailure: () => failures++ })
  write()
  await waitFor(() => checkpointer.shouldCatchUp, 'the worker reports the WAL')
  await (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate()
  await waitFor(() => failures === 1, 'onFailure is called')
  assert.equal(checkpointer.shouldCatchUp, false)
  await checkpointer.catchUp() // resolves at once instead of waiting on a dead worker
  await checkpointer.stop()
  assert.equal(failures, 1, 'stop() after a failure is not a second failure')
  db.close()

  const store = new SqliteStore(join(dir, 'store-fallback.db'))
  await store.migrate()
  assert.equal(store.database.pragma('wal_autocheckpoint', { simple: true }), 0, 'the worker checkpoints')
  // With a limit the writer would truncate a long WAL file inside a commit, on the event loop.
  assert.equal(store.database.pragma('journal_size_limit', { simple: true }), -1, 'the writer never truncates the WAL')
  const inner = (store as unknown as { checkpointer: { worker: { terminate(): Promise<number> } } }).checkpointer
  await inner.worker.terminate()
  await waitFor(
    () => store.database.pragma('wal_autocheckpoint', { simple: true }) !== 0,
    'the store turns SQLite auto-checkpoints back on',
  )
  const project = await store.ensureProject('p')
  const parsed = parseUploadBody({ field_name: ['user_id', 'plan'], values: [['u1', 'pro']] })
  assert.ok(parsed.ok)
  await store.applyUpload(project.id, parsed.value)
  assert.equal((await store.getProfile(project.id, 'u1'))?.attributes.plan, 'pro')
  await store.close()
})
