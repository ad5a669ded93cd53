import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { postgresTestDatabase, runCli, BIN, SERVER } from './processes.js'

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

/** The worker pids of a primary (its children), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('traitbase serve --workers N (node:cluster)', () => {
  const db = postgresTestDatabase()
  let skip: string | undefined
  before(async () => {
    skip = await db.setup()
  })
  after(() => db.teardown())

  test('SQLite: --workers 2 is refused with a clear message (exit 78); WEB_CONCURRENCY=2 runs one process and says so', async () => {
    assert.ok(existsSync(SERVER), `${SERVER} is missing: run "npm run build" first (npm test does)`)
    const refused = await runCli(['serve', '--workers', '2'], { DATABASE_URL: 'sqlite::memory:', PORT: '0' })
    assert.equal(refused.code, 78)
    assert.match(refused.stderr, /--workers 2 refused: SQLite serves from one process; .*PostgreSQL/)
    const bad = await runCli(['serve', '--workers', 'many'], { DATABASE_URL: 'sqlite::memory:' })
    assert.equal(bad.code, 78)
    assert.match(bad.stderr, /--workers takes a number of processes from 1 to 256/)

    const port = await freePort()
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: { ...process.env, DATABASE_URL: 'sqlite::memory:', PORT: String(port), WEB_CONCURRENCY: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')))
    try {
      await until('the server', async () =>
        (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok ? true : undefined,
      )
      assert.match(out, /WEB_CONCURRENCY=2 ignored: SQLite serves from one process/)
      assert.deepEqual(childrenOf(child.pid!), [], 'one process, no workers')
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  })

  test('PostgreSQL: 2 workers answer on one port; a killed worker is restarted; SIGTERM stops all gracefully (exit 0)', async (t) => {
    if (skip !== undefined) return t.skip(skip)
    const port = await freePort()
    const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--workers', '2'], {
      env: { ...process.env, DATABASE_URL: db.url(), PORT: String(port), LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')))
    child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const workers = await until('two workers', () => {
        const pids = childrenOf(child.pid!)
        return pids.length === 2 ? pids : undefined
      })
      await until('the server', async () =>
        (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok ? true : undefined,
      )
      assert.match(out, /"maxDatabaseConnections":24/, 'the primary states the connection budget (2 × 12)')
      // Requests are spread over both workers (each logs its own pid).
      for (let i = 0; i < 40; i++) await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { connection: 'close' } })
      await until('answers from both workers', () =>
        workers.every((p) => out.includes(`"pid":${p}`)) ? true : undefined,
      )

      process.kill(workers[0]!, 'SIGKILL')
      const replaced = await until('a replacement worker', () => {
        const pids = childrenOf(child.pid!)
        return pids.length === 2 && !pids.includes(workers[0]!) ? pids : undefined
      })
      assert.ok(replaced.includes(workers[1]!), 'the other worker kept running')
      assert.match(out, /worker died; restarting it/)
      const fresh = replaced.find((p) => p !== workers[1])!
      await until('the replacement listening', () =>
        new RegExp(`"pid":${fresh},[^\n]*traitbase listening`).test(out) ? true : undefined,
      )

      child.kill('SIGTERM')
      const code = await exited
      assert.equal(code, 0, out.split('\n').slice(-8).join('\n'))
      assert.match(out, /all workers stopped/)
      for (const pid of replaced) assert.throws(() => process.kill(pid, 0), 'worker gone')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
})
