import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { startServer } from '../../bench/lib/server-process.js'
import { hashApiKey } from '../../src/storage/api-keys.js'
import { ROOT, SERVER, postgresTestDatabase, runCli, type CliResult } from './processes.js'

// Black-box: the real CLI (`node bin/traitbase.js`, built by `npm run build`) against a real database.

const SECRET = /^tbk_[A-Za-z0-9_-]{43}$/
const LISTING_KEYS = ['created_at', 'expires_at', 'id', 'label', 'last_used_at', 'revoked_at', 'scopes']

function lastLine(text: string): string {
  const lines = text.split('\n')
  assert.equal(lines.pop(), '', 'stdout ends with a newline')
  return lines[lines.length - 1] ?? ''
}

interface Listing {
  id: string
  label: string
  scopes: string[]
  created_at: string
  last_used_at: string | null
  revoked_at: string | null
}

interface Backend {
  readonly name: string
  /** Set up the database; returns a skip reason instead when it cannot run here. */
  setup(): Promise<string | undefined>
  url(): string
  /** Every stored byte (SQLite) or every row as text (PostgreSQL), to search for secrets. */
  dump(): Promise<string>
  teardown(): Promise<void>
}

function sqliteBackend(): Backend {
  let dir = ''
  return {
    name: 'SQLite',
    setup: async () => {
      dir = mkdtempSync(join(tmpdir(), 'traitbase-cli-keys-'))
      return undefined
    },
    url: () => `sqlite:${join(dir, 'keys.db')}`,
    dump: async () =>
      readdirSync(dir)
        .map((f) => readFileSync(join(dir, f)).toString('latin1'))
        .join('\n'),
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  }
}

function postgresBackend(): Backend {
  const db = postgresTestDatabase()
  return {
    name: 'PostgreSQL',
    ...db,
    dump: async () => {
      const client = new pg.Client({ connectionString: db.url() })
      await client.connect()
      try {
        const tables = await client.query<{ name: string }>(
          `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables
           WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`,
        )
        const parts: string[] = []
        for (const { name } of tables.rows) {
          const rows = await client.query<{ t: string }>(`SELECT t::text AS t FROM ${name} t`)
          parts.push(...rows.rows.map((r) => r.t))
        }
        return parts.join('\n')
      } finally {
        await client.end()
      }
    },
  }
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  describe(`traitbase keys (CLI, ${backend.name})`, () => {
    let skip: string | undefined
    before(async () => {
      assert.ok(existsSync(join(ROOT, 'dist/cli/main.js')), 'run `npm run build` first: the e2e tests spawn dist/')
      skip = await backend.setup()
      if (skip !== undefined) process.stdout.write(`# skipping ${backend.name} CLI keys tests: ${skip}\n`)
    })
    after(() => backend.teardown())
    const cli = (...args: string[]): Promise<CliResult> => runCli(args, { DATABASE_URL: backend.url() })
    const listJson = async (project: string): Promise<Listing[]> => {
      const r = await cli('keys', 'list', '--project', project, '--json')
      assert.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as Listing[]
    }

    test('create prints the secret as the last stdout line; only its hash is stored; list never shows it', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const created = await cli('keys', 'create', '--project', 'demo', '--label', 'first key')
      assert.equal(created.code, 0, created.stderr)
      const secret = lastLine(created.stdout)
      assert.match(secret, SECRET)
      assert.equal(created.stdout.split(secret).length, 2, 'the secret appears once')
      assert.equal(created.stderr.includes(secret), false)

      const listing = await listJson('demo')
      assert.equal(listing.length, 1)
      const key = listing[0] as Listing
      assert.deepEqual(Object.keys(key).sort(), LISTING_KEYS)
      assert.match(key.id, /^key_[0-9a-f]{16}$/)
      assert.ok(created.stdout.includes(key.id), 'create names the key id')
      assert.equal(key.label, 'first key')
      assert.deepEqual(key.scopes, ['profiles:write', 'profiles:read'])
      assert.ok(!Number.isNaN(Date.parse(key.created_at)) && key.created_at.endsWith('Z'))
      assert.equal(key.last_used_at, null)
      assert.equal(key.revoked_at, null)

      const table = await cli('keys', 'list', '--project', 'demo')
      assert.equal(table.code, 0, table.stderr)
      assert.match(table.stdout, /^ID\s+LABEL\s+SCOPES\s+CREATED\s+LAST USED\s+REVOKED\s+EXPIRES\n/)
      assert.ok(table.stdout.includes(key.id) && table.stdout.includes('first key'))
      for (const out of [table.stdout, JSON.stringify(listing)]) {
        assert.equal(out.includes(secret), false, 'list never shows the secret')
        assert.equal(out.includes(hashApiKey(secret)), false, 'list never shows the hash')
      }

      const stored = await backend.dump()
      assert.equal(stored.includes(secret), false, 'the secret is not in the database')
      assert.equal(stored.includes(secret.slice(4)), false, 'not even without its prefix')
      assert.ok(stored.includes(hashApiKey(secret)), 'its SHA-256 hash is')
    })

    test('--scopes and a second key; every secret is distinct', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const a = await cli('keys', 'create', '--project', 'scoped', '--scopes', 'profiles:read')
      const b = await cli('keys', 'create', '--project', 'scoped', '--scopes', ' profiles:read , profiles:write ')
      assert.equal(a.code, 0, a.stderr)
      assert.equal(b.code, 0, b.stderr)
      assert.notEqual(lastLine(a.stdout), lastLine(b.stdout))
      const listing = await listJson('scoped')
      assert.deepEqual(listing.map((k) => k.scopes).sort(), [['profiles:read'], ['profiles:read', 'profiles:write']])
      assert.deepEqual(
        listing.map((k) => k.label),
        ['', ''],
      )
    })

    test('revoke sets revoked_at; revoking again or an unknown id fails with a clear error', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      assert.equal((await cli('keys', 'create', '--project', 'rev')).code, 0)
      const [key] = await listJson('rev')
      assert.ok(key)
      const revoked = await cli('keys', 'revoke', key.id)
      assert.equal(revoked.code, 0, revoked.stderr)
      assert.match(revoked.stdout, new RegExp(`Revoked key ${key.id}`))
      const [after] = await listJson('rev')
      assert.ok(after?.revoked_at !== null && !Number.isNaN(Date.parse(after?.revoked_at ?? '')))

      const again = await cli('keys', 'revoke', key.id)
      assert.equal(again.code, 1)
      assert.match(again.stderr, /^error: no active key with id "key_[0-9a-f]{16}" \(unknown or already revoked\)\n$/)
      const unknown = await cli('keys', 'revoke', 'key_0000000000000000')
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /no active key with id "key_0000000000000000"/)
      assert.equal(unknown.stdout, '')
    })

    test('bad input fails with a clear message, exit 1, and creates nothing', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const badScope = await cli('keys', 'create', '--project', 'never', '--scopes', 'profiles:write,admin')
      assert.equal(badScope.code, 1)
      assert.equal(badScope.stdout, '')
      assert.equal(badScope.stderr, 'error: --scopes: unknown scope "admin" (known: profiles:write, profiles:read)\n')
      const noScope = await cli('keys', 'create', '--project', 'never', '--scopes', ',')
      assert.equal(noScope.code, 1)
      assert.match(noScope.stderr, /at least one scope is required/)
      const emptyName = await cli('keys', 'create', '--project', '  ')
      assert.equal(emptyName.code, 1)
      assert.match(emptyName.stderr, /project name must not be empty/)
      const control = await cli('keys', 'create', '--project', 'x', '--label', 'a\u001b[31mb')
      assert.equal(control.code, 1)
      assert.match(control.stderr, /label must not contain control characters/)

      const unknown = await cli('keys', 'list', '--project', 'never')
      assert.equal(unknown.code, 1)
      assert.equal(unknown.stdout, '')
      assert.match(unknown.stderr, /^error: no project named "never"/)
      const stored = await backend.dump()
      assert.equal(stored.includes('never'), false, 'the failed creates left no project behind')

      const missing = await cli('keys', 'create')
      assert.notEqual(missing.code, 0)
      assert.match(missing.stderr, /required option '--project <name>' not specified/)
    })

    test('a bad DATABASE_URL is a one-line error, not a stack trace', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const r = await runCli(['keys', 'list', '--project', 'demo'], { DATABASE_URL: 'mysql://user:pw@host/db' })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /^error: Unsupported DATABASE_URL "mysql:\/\/\*\*\*@host\/db"/)
      assert.equal(r.stderr.includes('pw'), false)
      assert.equal(r.stderr.includes('    at '), false)
    })

    test('list and revoke on a database that does not exist fail without creating it; usage errors exit 2', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const dir = mkdtempSync(join(tmpdir(), 'traitbase-nodb-'))
      t.after(() => rmSync(dir, { recursive: true, force: true }))
      const url = `sqlite:${join(dir, 'missing', 'x.db')}`
      for (const args of [
        ['keys', 'list', '--project', 'p'],
        ['keys', 'revoke', 'key_x'],
      ]) {
        const r = await runCli(args, { DATABASE_URL: url })
        assert.equal(r.code, 1)
        assert.match(r.stderr, /^error: no database at .*x\.db: check DATABASE_URL/)
      }
      assert.equal(existsSync(join(dir, 'missing')), false, 'nothing was created')
      for (const args of [
        ['keys', 'list'],
        ['keys', 'nope'],
        ['segment', 'count'],
        ['keys', 'list', '--bogus'],
      ]) {
        assert.equal((await runCli(args, { DATABASE_URL: url })).code, 2, args.join(' '))
      }
    })

    test('the server accepts a new key and refuses it once revoked', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      assert.ok(existsSync(SERVER), 'run `npm run build` first: dist/server/main.js is missing')
      const created = await cli('keys', 'create', '--project', 'live')
      const secret = lastLine(created.stdout)
      const [key] = await listJson('live')
      assert.ok(key)
      const logDir = mkdtempSync(join(tmpdir(), 'traitbase-cli-keys-log-'))
      const server = await startServer({
        entry: SERVER,
        env: { DATABASE_URL: backend.url(), LOG_LEVEL: 'warn' },
        logFile: join(logDir, 'server.log'),
      })
      try {
        const upload = (): Promise<Response> =>
          fetch(`${server.baseUrl}/v1/user/profiles`, {
            method: 'POST',
            headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
            body: JSON.stringify({ field_name: ['user_id', 'plan'], values: [['u1', 'pro']] }),
          })
        const ok = await upload()
        assert.equal(ok.status, 200, await ok.text())
        const [used] = await listJson('live')
        assert.ok(used?.last_used_at === null || !Number.isNaN(Date.parse(used?.last_used_at ?? '')))

        assert.equal((await cli('keys', 'revoke', key.id)).code, 0)
        const refused = await upload()
        assert.equal(refused.status, 401)
        assert.equal(typeof ((await refused.json()) as { msg: unknown }).msg, 'string')
      } finally {
        await server.stop()
        rmSync(logDir, { recursive: true, force: true })
      }
    })
  })
}
