import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { BIN, ROOT, SERVER } from './processes.js'

// Black-box: the built CLI sets the console password and makes an admin token; two real server
// processes on one SQLite file share sessions and the request log, as several processes must.

const dir = mkdtempSync(join(tmpdir(), 'traitbase-admin-e2e-'))
const DATABASE_URL = `sqlite:${join(dir, 'admin.db')}`
const PASSWORD = 'e2e password 1'
let a: ServerProcess
let b: ServerProcess

function cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

before(async () => {
  const short = await cli(['admin', 'set-password'], 'short\n')
  assert.equal(short.code, 1)
  assert.match(short.stderr, /^error: the password must have at least 8 characters\n$/)
  const set = await cli(['admin', 'set-password'], `${PASSWORD}\n`)
  assert.equal(set.code, 0, set.stderr)
  const env = { DATABASE_URL, LOG_LEVEL: 'warn' }
  a = await startServer({ entry: SERVER, env, logFile: join(dir, 'a.log') })
  b = await startServer({ entry: SERVER, env, logFile: join(dir, 'b.log') })
})

after(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  rmSync(dir, { recursive: true, force: true })
})

test('the CLI password signs in on one process, and the session works on the other until signed out', async () => {
  const wrong = await fetch(`${a.baseUrl}/admin/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'not it at all' }),
  })
  assert.equal(wrong.status, 401)
  const signIn = await fetch(`${a.baseUrl}/admin/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: PASSWORD }),
  })
  assert.equal(signIn.status, 200)
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] as string
  const { csrf_token: csrf } = (await signIn.json()) as { csrf_token: string }
  const headers = { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' }

  const created = await fetch(`${b.baseUrl}/admin/api/projects`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'shared' }),
  })
  assert.equal(created.status, 201)
  const project = (await created.json()) as { id: number }
  const keyAnswer = await fetch(`${a.baseUrl}/admin/api/projects/${project.id}/keys`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ label: 'e2e' }),
  })
  const { secret } = (await keyAnswer.json()) as { secret: string }

  // An upload through A appears in the log read through B.
  const up = await fetch(`${a.baseUrl}/v1/user/profiles`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ field_name: ['user_id', 'plan'], values: [['u1', 'pro']] }),
  })
  assert.equal(up.status, 200)
  let log: { status: number; users_created: number; key_label: string }[] = []
  for (let i = 0; i < 100 && log.length === 0; i++) {
    const r = await fetch(`${b.baseUrl}/admin/api/projects/${project.id}/requests`, { headers: { cookie } })
    log = ((await r.json()) as { requests: typeof log }).requests
    if (log.length === 0) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.deepEqual(
    log.map((e) => [e.status, e.users_created, e.key_label]),
    [[200, 1, 'e2e']],
  )

  const out = await fetch(`${b.baseUrl}/admin/api/session`, {
    method: 'DELETE',
    headers: { cookie, 'x-csrf-token': csrf },
  })
  assert.equal(out.status, 200)
  assert.equal((await fetch(`${a.baseUrl}/admin/api/projects`, { headers: { cookie } })).status, 401)
})

test('an admin token from the CLI opens the admin API of every process; an API key does not', async () => {
  const made = await cli(['admin', 'token', 'create', '--label', 'deploy'])
  assert.equal(made.code, 0, made.stderr)
  const token = made.stdout.trimEnd().split('\n').pop() as string
  assert.match(token, /^tba_[A-Za-z0-9_-]{43}$/)
  for (const server of [a, b]) {
    const r = await fetch(`${server.baseUrl}/admin/api/projects`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(r.status, 200)
  }
  const key = await cli(['keys', 'create', '--project', 'other'])
  const apiKey = key.stdout.trimEnd().split('\n').pop() as string
  const refused = await fetch(`${a.baseUrl}/admin/api/projects`, { headers: { authorization: `Bearer ${apiKey}` } })
  assert.equal(refused.status, 401)
  const list = await cli(['admin', 'token', 'list', '--json'])
  const tokens = JSON.parse(list.stdout) as { id: string; label: string }[]
  const id = tokens.find((t) => t.label === 'deploy')?.id as string
  assert.equal((await cli(['admin', 'token', 'revoke', id])).code, 0)
  const revoked = await fetch(`${b.baseUrl}/admin/api/projects`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(revoked.status, 401)
})
