import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { Checkpointer } from './sqlite-checkpointer.js'

const dir = mkdtempSync(join(tmpdir(), 'traitbase-ckpt-'))
after(() => rmSync(dir, { recursive: true, force: true }))

test('a busy writer that waits on catchUp() keeps the WAL bounded; without it the WAL grows', async () => {
  const run = async (useCatchUp: boolean): Promise<number> => {
    const filename = join(dir, `wal-${useCatchUp}.db`)
    const db = new Database(filename)
    db.pragma('journal_mode = WAL')
    db.pragma('wal_autocheckpoint = 0')
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    const checkpointer = new Checkpointer({ filename, intervalMs: 5, restartFrames: 200 })
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
    const write = db.transaction(() => {
      for (let i = 0; i < 50; i++) insert.run('x'.repeat(2000))
    })
    let maxWal = 0
    for (let i = 0; i < 200; i++) {
      if (useCatchUp && checkpointer.shouldCatchUp) await checkpointer.catchUp()
      write()
      maxWal = Math.max(maxWal, statSync(`${filename}-wal`).size)
      // The writer is busy but yields, as the store does between flushes, so the worker's reports arrive.
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    await checkpointer.stop()
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 10_000)
    db.close()
    return maxWal
  }
  const bounded = await run(true)
  const unbounded = await run(false)
  // 10,000 rows of 2 KB are ~20 MB of pages; with catch-up the WAL restarts every few hundred frames.
  assert.ok(bounded < 8 * 1024 * 1024, `bounded WAL reached ${bounded} bytes`)
  assert.ok(unbounded > 2 * bounded, `unbounded ${unbounded} vs bounded ${bounded}`)
})
