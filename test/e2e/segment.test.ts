import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { compareCodePoints } from '../../src/core/text.js'
import { createTestKey } from '../../src/server/test-app.js'
import { openStore } from '../../src/storage/open-store.js'
import { createTestDatabase } from '../../src/storage/postgres/test-database.js'
import { SERVER, runCli } from './processes.js'

// Black box over real sockets: two server processes on one database (one takes uploads, the other
// answers segment queries from its own in-memory index), and the CLI's segment commands.

// Response bodies are checked field by field against literal expectations, so loose typing is fine here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

async function api(base: string, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Json) : undefined }
}

interface Backend {
  readonly name: string
  setup(): Promise<{ url: string; cleanup(): Promise<void> } | { skip: string }>
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    async setup() {
      const dir = mkdtempSync(join(tmpdir(), 'traitbase-seg-e2e-'))
      return {
        url: `sqlite:${join(dir, 'db.sqlite')}`,
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'postgres',
    async setup() {
      const db = await createTestDatabase()
      if ('skip' in db) return db
      return { url: db.url, cleanup: () => db.drop() }
    },
  },
  {
    name: 'citus',
    async setup() {
      const db = await createTestDatabase('citus')
      if ('skip' in db) return db
      return { url: db.url, cleanup: () => db.drop() }
    },
  },
]

for (const backend of BACKENDS) {
  describe(`segments end to end on ${backend.name}`, () => {
    let skip: string | undefined
    let cleanup: () => Promise<void> = async () => undefined
    let writer: ServerProcess | undefined
    let reader: ServerProcess | undefined
    let key = ''
    const logDir = mkdtempSync(join(tmpdir(), 'traitbase-seg-log-'))

    before(async () => {
      assert.ok(existsSync(SERVER), `${SERVER} is missing: run "npm run build" first (npm test does)`)
      const db = await backend.setup()
      if ('skip' in db) {
        skip = db.skip
        console.log(`# skipping ${backend.name} segment e2e: ${skip}`)
        return
      }
      cleanup = db.cleanup
      const store = await openStore(db.url)
      key = await createTestKey(store, 'e2e')
      await store.close()
      const env = { DATABASE_URL: db.url, LOG_LEVEL: 'warn' }
      writer = await startServer({ entry: SERVER, env, logFile: join(logDir, 'writer.log') })
      reader = await startServer({ entry: SERVER, env, logFile: join(logDir, 'reader.log') })
    })
    after(async () => {
      await writer?.stop()
      await reader?.stop()
      await cleanup()
      rmSync(logDir, { recursive: true, force: true })
    })

    test('the reader process sees every upload the writer process acknowledged', async (t) => {
      if (writer === undefined || reader === undefined) return t.skip(skip)
      const where = { field: 'plan', op: 'eq', value: 'pro' }
      assert.equal((await api(reader.baseUrl, key, 'POST', '/v1/user/segments/query', { where })).json?.data.count, 0)
      for (let i = 0; i < 5; i++) {
        const up = await api(writer.baseUrl, key, 'POST', '/v1/user/profiles', {
          field_name: ['user_id', 'plan', 'ltv'],
          values: [[`p${i}`, 'pro', i * 10]],
        })
        assert.equal(up.status, 200)
        const q = await api(reader.baseUrl, key, 'POST', '/v1/user/segments/query', { where })
        assert.equal(q.json?.data.count, i + 1)
      }
      await api(writer.baseUrl, key, 'DELETE', '/v1/user/profiles/p0')
      const q = await api(reader.baseUrl, key, 'POST', '/v1/user/segments/query', { where })
      assert.deepEqual(q.json?.data, { count: 4, user_ids: ['p1', 'p2', 'p3', 'p4'], next_cursor: null })
      const catalog = await api(reader.baseUrl, key, 'GET', '/v1/user/attributes')
      assert.deepEqual(
        catalog.json?.data.attributes.map((a: { name: string; users: number }) => [a.name, a.users]),
        [
          ['ltv', 4],
          ['plan', 4],
        ],
      )
    })

    test('paging over HTTP on one process while the other uploads: each matching user once, in order', async (t) => {
      if (writer === undefined || reader === undefined) return t.skip(skip)
      const base = Array.from({ length: 400 }, (_, i) => [`w${String(i).padStart(4, '0')}`, 'walk'])
      for (let i = 0; i < base.length; i += 100) {
        const r = await api(writer.baseUrl, key, 'POST', '/v1/user/profiles', {
          field_name: ['user_id', 'group'],
          values: base.slice(i, i + 100),
        })
        assert.equal(r.status, 200)
      }
      let writing = true
      let n = 0
      const load = (async () => {
        while (writing) {
          await api(writer.baseUrl, key, 'POST', '/v1/user/profiles', {
            field_name: ['user_id', 'group'],
            values: [
              [`w${String((n * 7) % 400).padStart(4, '0')}x`, 'walk'],
              [`a${n}`, 'walk'],
              [`w${String((n * 11) % 400).padStart(4, '0')}`, 'walk'],
            ],
          })
          n++
        }
      })()
      const seen: string[] = []
      let cursor: string | undefined
      for (;;) {
        const r = await api(reader.baseUrl, key, 'POST', '/v1/user/segments/query', {
          where: { field: 'group', op: 'eq', value: 'walk' },
          limit: 17,
          ...(cursor === undefined ? {} : { cursor }),
        })
        assert.equal(r.status, 200)
        seen.push(...(r.json?.data.user_ids as string[]))
        if (r.json?.data.next_cursor === null) break
        cursor = r.json?.data.next_cursor as string
      }
      writing = false
      await load
      assert.ok(n > 0, 'uploads ran during the walk')
      assert.equal(new Set(seen).size, seen.length)
      assert.deepEqual([...seen].sort(compareCodePoints), seen)
      for (const [id] of base) assert.ok(seen.includes(id as string), `${id} visited`)
    })

    test('CLI: segment count and export; a bad --where exits 2 naming the place', async (t) => {
      if (writer === undefined || reader === undefined) return t.skip(skip)
      const env = { TRAITBASE_URL: reader.baseUrl, TRAITBASE_API_KEY: key }
      const count = await runCli(['segment', 'count', '--where', '{"field":"plan","op":"eq","value":"pro"}'], env)
      assert.equal(count.code, 0, count.stderr)
      assert.equal(count.stdout, '4\n')

      const csv = await runCli(
        ['segment', 'export', '--where', '{"field":"ltv","op":"gte","value":20}', '--fields', 'plan,ltv'],
        env,
      )
      assert.equal(csv.code, 0, csv.stderr)
      assert.equal(csv.stdout, 'user_id,plan,ltv\r\np2,pro,20\r\np3,pro,30\r\np4,pro,40\r\n')

      const dir = mkdtempSync(join(tmpdir(), 'traitbase-seg-out-'))
      try {
        const file = join(dir, 'out.ndjson')
        const nd = await runCli(
          ['segment', 'export', '--where', '{"field":"plan","op":"exists"}', '--format', 'ndjson', '--output', file],
          env,
        )
        assert.equal(nd.code, 0, nd.stderr)
        const lines = readFileSync(file, 'utf8').trim().split('\n')
        assert.deepEqual(JSON.parse(lines[0] as string), { user_id: 'p1', attributes: { plan: 'pro', ltv: '10' } })
        assert.equal(lines.length, 4)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }

      const bad = await runCli(['segment', 'count', '--where', '{"all":[{"field":"a","op":"like","value":"x"}]}'], env)
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /where\.all\[0\]\.op/)
      const wrongKey = await runCli(['segment', 'count', '--where', '{"all":[]}', '--key', 'tbk_nope'], env)
      assert.equal(wrongKey.code, 1)
      assert.match(wrongKey.stderr, /401/)
    })
  })
}
