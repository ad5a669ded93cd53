import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openStore } from '../../src/storage/open-store.js'
import { createTestDatabase, type TestDatabase } from '../../src/storage/postgres/test-database.js'
import { createTestKey } from '../../src/server/test-app.js'

/** Black box: the built server, as `npm start` runs it. `npm test` builds first. */
const MAIN = fileURLToPath(new URL('../../dist/server/main.js', import.meta.url))

interface Server {
  readonly url: string
  readonly proc: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly output: () => string
}

function startServer(env: Record<string, string>): Promise<Server> {
  assert.ok(existsSync(MAIN), `${MAIN} is missing: run "npm run build" first (npm test does)`)
  const proc = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${out}`)), 20_000)
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8')
      const m = /traitbase listening on (https?:\/\/[^"\s]+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1] as string, proc, exited, output: () => out })
      }
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    void exited.then(({ code }) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code} before listening:\n${out}`))
    })
  })
}

async function upload(url: string, key: string, body: unknown): Promise<number> {
  const res = await fetch(`${url}/v1/user/profiles`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  await res.arrayBuffer()
  return res.status
}

async function readBack(url: string, key: string, userId: string): Promise<Record<string, string> | undefined> {
  const res = await fetch(`${url}/v1/user/profiles/${encodeURIComponent(userId)}`, {
    headers: { authorization: `Bearer ${key}` },
  })
  if (res.status === 404) return undefined
  assert.equal(res.status, 200)
  return ((await res.json()) as { data: { attributes: Record<string, string> } }).data.attributes
}

async function keyFor(databaseUrl: string): Promise<string> {
  const store = await openStore(databaseUrl)
  try {
    return await createTestKey(store, 'e2e')
  } finally {
    await store.close()
  }
}

interface Backend {
  readonly name: string
  setup(): Promise<{ databaseUrl: string; cleanup(): Promise<void> } | { skip: string }>
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    async setup() {
      const dir = mkdtempSync(join(tmpdir(), 'traitbase-e2e-'))
      return {
        databaseUrl: `sqlite:${join(dir, 'data', 'e2e.db')}`,
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'PostgreSQL',
    async setup() {
      const db = await createTestDatabase()
      if ('skip' in db) return db
      return { databaseUrl: (db as TestDatabase).url, cleanup: () => (db as TestDatabase).drop() }
    },
  },
  {
    name: 'Citus (3 nodes)',
    async setup() {
      const db = await createTestDatabase('citus')
      if ('skip' in db) return db
      return { databaseUrl: db.url, cleanup: () => db.drop() }
    },
  },
]

for (const backend of backends) {
  describe(`server process on ${backend.name}`, () => {
    let databaseUrl = ''
    let cleanup: () => Promise<void> = async () => undefined
    let skip: string | undefined

    before(async () => {
      const s = await backend.setup()
      if ('skip' in s) {
        skip = s.skip
        process.stdout.write(`# skipping ${backend.name} e2e: ${s.skip}\n`)
        return
      }
      databaseUrl = s.databaseUrl
      cleanup = s.cleanup
    })
    after(async () => cleanup())

    test('every upload that got its 200 survives kill -9 right after it', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const key = await keyFor(databaseUrl)
      const server = await startServer({ DATABASE_URL: databaseUrl })
      const requests = 10
      const statuses: number[] = []
      for (let r = 0; r < requests; r++) {
        const values = Array.from({ length: 100 }, (_, i) => [`user-${r}-${i}`, `r${r}`, String(i)])
        statuses.push(await upload(server.url, key, { field_name: ['user_id', 'batch', 'n'], values }))
      }
      // The last 200 is in hand: kill at once, no chance to flush anything more.
      server.proc.kill('SIGKILL')
      assert.deepEqual(statuses, Array(requests).fill(200))
      assert.equal((await server.exited).signal, 'SIGKILL')

      const again = await startServer({ DATABASE_URL: databaseUrl })
      try {
        assert.deepEqual(await readBack(again.url, key, 'user-9-99'), { batch: 'r9', n: '99' })
        assert.deepEqual(await readBack(again.url, key, 'user-0-0'), { batch: 'r0', n: '0' })
        const store = await openStore(databaseUrl)
        try {
          const project = await store.findProject('e2e')
          assert.ok(project)
          assert.equal(await store.countProfiles(project.id), requests * 100)
        } finally {
          await store.close()
        }
      } finally {
        again.proc.kill('SIGKILL')
        await again.exited
      }
    })

    test('SIGTERM lets an in-flight request finish, closes the database and exits 0', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const key = await keyFor(databaseUrl)
      const server = await startServer({ DATABASE_URL: databaseUrl })
      const { port } = new URL(server.url)
      const body = JSON.stringify({ field_name: ['user_id', 'state'], values: [['in-flight', 'finished']] })
      const socket = connect(Number(port), '127.0.0.1')
      let answer = ''
      socket.on('data', (c: Buffer) => (answer += c.toString('utf8')))
      const closed = new Promise((r) => socket.on('close', r))
      await new Promise((r) => socket.on('connect', r))
      socket.write(
        `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
      )
      await new Promise((r) => setTimeout(r, 200))
      server.proc.kill('SIGTERM')
      await new Promise((r) => setTimeout(r, 300))
      // Not end(): a client that half-closes its side makes Node abort the request it is still sending.
      socket.write(body.slice(10))
      await closed
      assert.match(answer, /^HTTP\/1.1 200 /, answer)
      const { code } = await server.exited
      assert.equal(code, 0, server.output())
      assert.match(server.output(), /"msg":"stopped"/)

      const again = await startServer({ DATABASE_URL: databaseUrl })
      try {
        assert.deepEqual(await readBack(again.url, key, 'in-flight'), { state: 'finished' })
        again.proc.kill('SIGINT')
        assert.equal((await again.exited).code, 0, 'SIGINT is graceful too')
      } finally {
        again.proc.kill('SIGKILL')
      }
    })

    test('logs are JSON lines with a request id and never the key or attribute values', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const key = await keyFor(databaseUrl)
      const server = await startServer({ DATABASE_URL: databaseUrl })
      try {
        assert.equal(
          await upload(server.url, key, { field_name: ['user_id', 'secret'], values: [['log-user', 'TOPSECRET']] }),
          200,
        )
        await readBack(server.url, key, 'log-user')
        await upload(server.url, key, { field_name: ['user_id', 'secret'], values: [['log-user', 'x'.repeat(200)]] })
      } finally {
        server.proc.kill('SIGTERM')
        await server.exited
      }
      const lines = server.output().trim().split('\n')
      for (const line of lines) JSON.parse(line)
      const completed = lines.filter((l) => l.includes('request completed'))
      assert.ok(completed.length >= 3)
      for (const l of completed) assert.match(l, /"reqId":"[0-9a-f-]{36}"/)
      assert.ok(!server.output().includes(key), 'no key in logs')
      assert.ok(!server.output().includes('TOPSECRET'), 'no attribute values in logs')
      assert.ok(!server.output().includes('log-user'), 'no user ids in logs')
    })
  })
}

describe('server process configuration', () => {
  test('a bad variable stops startup with a clear message and exit code 78', async () => {
    const proc = spawn(process.execPath, [MAIN], {
      env: { ...process.env, PORT: 'eighty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let err = ''
    proc.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')))
    const code = await new Promise((r) => proc.on('exit', r))
    assert.equal(code, 78)
    assert.match(err, /PORT must be an integer from 0 to 65535, got "eighty"/)
  })

  test('a port in use stops startup with one clear line, no stack trace, exit 1', async (t) => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    t.after(() => blocker.close())
    const port = (blocker.address() as { port: number }).port
    const dir = mkdtempSync(join(tmpdir(), 'traitbase-port-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const proc = spawn(process.execPath, [MAIN], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(dir, 'p.db')}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let err = ''
    proc.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')))
    const code = await new Promise((r) => proc.on('exit', r))
    assert.equal(code, 1)
    assert.match(err, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`))
    assert.ok(!err.includes('    at '), err)
  })

  test('a request that never finishes cannot hold shutdown past SHUTDOWN_TIMEOUT_MS: exit 1', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'traitbase-stuck-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const databaseUrl = `sqlite:${join(dir, 'stuck.db')}`
    const key = await keyFor(databaseUrl)
    const server = await startServer({ DATABASE_URL: databaseUrl, SHUTDOWN_TIMEOUT_MS: '500' })
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1')
    socket.on('error', () => undefined)
    await new Promise((r) => socket.on('connect', r))
    socket.write(
      `POST /v1/user/profiles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    )
    await new Promise((r) => setTimeout(r, 100))
    const started = Date.now()
    server.proc.kill('SIGTERM')
    const { code } = await server.exited
    socket.destroy()
    assert.equal(code, 1)
    assert.ok(Date.now() - started < 5000, `exited after ${Date.now() - started} ms`)
    assert.match(server.output(), /shutdown timed out/)
  })

  test('with TLS_CERT and TLS_KEY the server speaks HTTPS', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'traitbase-tls-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      )
    } catch (error) {
      return t.skip(`openssl is not usable here: ${(error as Error).message}`)
    }
    const server = await startServer({
      DATABASE_URL: `sqlite:${join(dir, 'tls.db')}`,
      TLS_CERT: join(dir, 'cert.pem'),
      TLS_KEY: join(dir, 'key.pem'),
    })
    try {
      assert.match(server.url, /^https:\/\//)
      const ca = readFileSync(join(dir, 'cert.pem'))
      const status = await new Promise<number>((resolve, reject) => {
        httpsRequest(`${server.url}/healthz`, { ca }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
          .on('error', reject)
          .end()
      })
      assert.equal(status, 200)
    } finally {
      server.proc.kill('SIGTERM')
      await server.exited
    }
  })
})
