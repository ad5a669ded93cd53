/**
 * `npm run bench:upload-cli`: how fast `traitbase upload` moves a big wide CSV into a local server,
 * against what the server itself takes for the same request shape.
 *
 * 1. Generates BENCH_ROWS (default 1,000,000) rows × 60 columns (user_id + 59 attributes, so every
 *    row needs two requests: 49 + 10 attributes) into a temp dir.
 * 2. Server load: a fresh server on a temp SQLite file, driven with plain HTTP over 32 keep-alive
 *    connections with exactly the requests the CLI sends (100 users × 50 fields, then 100 × 11).
 * 3. CLI: another fresh server and database; `node bin/traitbase.js upload FILE`; then 1,000 random
 *    users are read back and compared attribute by attribute.
 * Prints rows/s, requests, retries, the CLI's peak RSS, the server's users/s and the ratio.
 *
 * Env: BENCH_ROWS, BENCH_CONCURRENCY (CLI, default 4), BENCH_CONNECTIONS (load, default 32), BENCH_KEEP=1 keeps the dir.
 */
import { spawn } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { startServer, type ServerProcess } from './lib/server-process.js'
import { createClient } from '../src/sdk/index.js'

const ROOT = resolve(import.meta.dirname, '..')
const BIN = join(ROOT, 'bin/traitbase.js')
const SERVER = join(ROOT, 'dist/server/main.js')
const ROWS = positiveInt('BENCH_ROWS', 1_000_000)
const CONCURRENCY = positiveInt('BENCH_CONCURRENCY', 4)
const CONNECTIONS = positiveInt('BENCH_CONNECTIONS', 32)
const ATTRIBUTES = 59
const COLUMNS = ['user_id', ...Array.from({ length: ATTRIBUTES }, (_, c) => `attr_${c + 1}`)]
const SAMPLE = 1000

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`)
  return n
}

/** Deterministic, mixed values: low-cardinality words, numbers, a few longer strings. */
function value(row: number, column: number): string {
  const h = Math.imul(row + 1, 2654435761) ^ Math.imul(column + 7, 40503)
  const v = (h >>> 0) % 1000
  if (column % 3 === 0) return `w${v % 12}`
  if (column % 3 === 1) return String(v)
  return `s${v}-${column}`
}
const userId = (row: number): string => `u${((Math.imul(row, 2654435761) >>> 0) % 1e9).toString(36)}-${row}`

async function generateCsv(path: string): Promise<void> {
  const out = createWriteStream(path)
  out.write(`${COLUMNS.join(',')}\n`)
  let lines: string[] = []
  for (let r = 0; r < ROWS; r++) {
    const cells = [userId(r)]
    for (let c = 1; c <= ATTRIBUTES; c++) cells.push(value(r, c))
    lines.push(cells.join(','))
    if (lines.length === 2000 || r === ROWS - 1) {
      if (!out.write(`${lines.join('\n')}\n`)) await once(out, 'drain')
      lines = []
    }
  }
  out.end()
  await once(out, 'finish')
}

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8')
      process.stderr.write(c)
    })
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

async function createKey(databaseUrl: string): Promise<string> {
  const r = await runCli(['keys', 'create', '--project', 'bench'], { DATABASE_URL: databaseUrl })
  const key = r.stdout.trim().split('\n').at(-1) ?? ''
  if (!key.startsWith('tbk_')) throw new Error(`keys create failed (${r.code}): ${r.stderr}`)
  return key
}

/** The two bodies the CLI sends for rows [from, from + 100): attributes 1–49, then 50–59. */
function bodies(from: number, to: number): string[] {
  const first = COLUMNS.slice(0, 50)
  const second = ['user_id', ...COLUMNS.slice(50)]
  const a: string[][] = []
  const b: string[][] = []
  for (let r = from; r < to; r++) {
    const id = userId(r)
    a.push([id, ...Array.from({ length: 49 }, (_, c) => value(r, c + 1))])
    b.push([id, ...Array.from({ length: ATTRIBUTES - 49 }, (_, c) => value(r, c + 50))])
  }
  return [JSON.stringify({ field_name: first, values: a }), JSON.stringify({ field_name: second, values: b })]
}

function post(agent: Agent, server: ServerProcess, key: string, body: string): Promise<number> {
  const url = new URL('/v1/user/profiles', server.baseUrl)
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume()
        res.on('end', () => resolvePromise(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** Plain HTTP load: CONNECTIONS workers, each sending both requests of its next 100 rows. */
async function measureServer(server: ServerProcess, key: string): Promise<{ usersPerSecond: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  let next = 0
  let errors = 0
  const started = performance.now()
  const worker = async (): Promise<void> => {
    for (;;) {
      const from = next
      if (from >= ROWS) return
      next += 100
      for (const body of bodies(from, Math.min(ROWS, from + 100))) {
        const status = await post(agent, server, key, body)
        if (status !== 200) errors++
      }
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, worker))
  const seconds = (performance.now() - started) / 1000
  agent.destroy()
  return { usersPerSecond: ROWS / seconds, errors }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'traitbase-upload-cli-bench-'))
  const servers: ServerProcess[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()))
    if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))
  try {
    console.log(
      `upload-cli bench: ${fmt(ROWS)} rows × ${COLUMNS.length} columns, CLI concurrency ${CONCURRENCY}, load ${CONNECTIONS} connections`,
    )
    console.log(
      `load average at start: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (${dir})`,
    )
    const csv = join(dir, 'profiles.csv')
    let t = performance.now()
    await generateCsv(csv)
    console.log(
      `generated ${csv}: ${fmt(statSync(csv).size / 1e6)} MB in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    )

    const loadDb = `sqlite:${join(dir, 'load.db')}`
    const loadKey = await createKey(loadDb)
    const loadServer = await startServer({
      entry: SERVER,
      env: { DATABASE_URL: loadDb },
      logFile: join(dir, 'load-server.log'),
    })
    servers.push(loadServer)
    const load = await measureServer(loadServer, loadKey)
    await loadServer.stop()
    console.log(`server, plain HTTP load: ${fmt(load.usersPerSecond)} users/s (${load.errors} errors)`)

    const cliDb = `sqlite:${join(dir, 'cli.db')}`
    const key = await createKey(cliDb)
    const server = await startServer({
      entry: SERVER,
      env: { DATABASE_URL: cliDb },
      logFile: join(dir, 'cli-server.log'),
    })
    servers.push(server)
    t = performance.now()
    const r = await runCli(
      [
        'upload',
        csv,
        '--url',
        server.baseUrl,
        '--concurrency',
        String(CONCURRENCY),
        '--json',
        '--progress-every',
        '10',
      ],
      { TRAITBASE_API_KEY: key },
    )
    const seconds = (performance.now() - t) / 1000
    if (r.code !== 0) throw new Error(`the CLI exited ${r.code}: ${r.stderr.split('\n').slice(-5).join('\n')}`)
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>
    const rowsPerSecond = ROWS / seconds

    const client = createClient({ baseUrl: server.baseUrl, apiKey: key })
    let mismatches = 0
    for (let i = 0; i < SAMPLE; i++) {
      const row = Math.floor(Math.random() * ROWS)
      const p = await client.getProfile(userId(row))
      const attrs = p?.attributes ?? {}
      const ok =
        Object.keys(attrs).length === ATTRIBUTES && COLUMNS.slice(1).every((c, k) => attrs[c] === value(row, k + 1))
      if (!ok) mismatches++
    }
    await server.stop()

    console.log(`CLI: ${fmt(ROWS)} rows in ${seconds.toFixed(1)} s = ${fmt(rowsPerSecond)} rows/s`)
    console.log(
      `CLI: ${fmt(summary.requests ?? 0)} requests, ${fmt(summary.retries ?? 0)} retries, sent ${fmt(summary.sent ?? 0)}, rejected ${summary.rejected}, failed ${summary.failed}`,
    )
    console.log(`CLI peak RSS: ${((summary.peakRssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB (target < 200 MiB)`)
    console.log(`read back ${SAMPLE} random users: ${SAMPLE - mismatches} match, ${mismatches} differ`)
    console.log(
      `ratio CLI / server load: ${((rowsPerSecond / load.usersPerSecond) * 100).toFixed(0)} % (target ≥ 80 %)`,
    )
    console.log(
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    )
    if (mismatches > 0) process.exitCode = 1
  } finally {
    await cleanup()
  }
}

await main()
