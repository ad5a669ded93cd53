import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import {
  buildSnippets,
  KEY_VARIABLE,
  SAMPLE_BODY,
  type Snippet,
  type SnippetLanguage,
} from '../../console/src/snippets.js'
import { BIN, ROOT, SERVER, runCli } from '../e2e/processes.js'

// The Integration page's snippets, run as a user pastes them: each against the real server, then the
// uploaded user is read back. Go runs only where a Go toolchain is installed, Python only with `requests`;
// in CI (CI=true, where .ci/run installs both) they run always, so a missing toolchain fails instead of skipping.

const has = (command: string, args: string[]): boolean => spawnSync(command, args, { stdio: 'ignore' }).status === 0
const HAS_GO = has('go', ['version'])
const HAS_REQUESTS = has('python3', ['-c', 'import requests'])
const IN_CI = process.env['CI'] === 'true'

function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; input?: string },
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (out += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, out }))
    child.stdin.end(options.input ?? '')
  })
}

/** How a user runs each snippet: paste into a shell, or save as the file its hint names and run that. */
async function runSnippet(snippet: Snippet, dir: string, env: Record<string, string> = {}) {
  switch (snippet.language) {
    case 'curl':
    case 'cli':
      return run('bash', ['-e'], { cwd: dir, env, input: snippet.code })
    case 'python':
      writeFileSync(join(dir, 'upload.py'), snippet.code)
      return run('python3', ['upload.py'], { cwd: dir, env })
    case 'node':
    case 'sdk':
      writeFileSync(join(dir, 'upload.mjs'), snippet.code)
      return run(process.execPath, ['upload.mjs'], { cwd: dir, env })
    case 'go':
      writeFileSync(join(dir, 'main.go'), snippet.code)
      return run('go', ['run', 'main.go'], { cwd: dir, env })
  }
}

describe('upload snippets run as pasted', () => {
  let dir = ''
  let server: ServerProcess
  let key = ''

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-snippets-'))
    const databaseUrl = `sqlite:${join(dir, 'snippets.db')}`
    server = await startServer({
      entry: SERVER,
      env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      logFile: join(dir, 'server.log'),
    })
    const created = await runCli(['keys', 'create', '--project', 'snippets', '--label', 'snippets'], {
      DATABASE_URL: databaseUrl,
    })
    assert.equal(created.code, 0, created.stderr)
    key = created.stdout.trim().split('\n').at(-1) ?? ''
    // "where traitbase is installed": a project folder whose node_modules holds this package.
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true })
    symlinkSync(ROOT, join(dir, 'node_modules', 'traitbase'))
    symlinkSync(BIN, join(dir, 'node_modules', '.bin', 'traitbase'))
  })

  after(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Erases the sample users, runs the snippet, then reads them back through the API. */
  async function check(language: SnippetLanguage, withKey: boolean) {
    const snippet = buildSnippets(server.baseUrl, withKey ? key : null).find((s) => s.language === language)
    assert.ok(snippet)
    if (withKey) assert.ok(snippet.code.includes(key), 'the key is filled in')
    // The CLI reads TRAITBASE_API_KEY by itself; the others name the variable.
    else assert.ok(!snippet.code.includes(key) && (language === 'cli' || snippet.code.includes(KEY_VARIABLE)))
    assert.ok(snippet.code.includes(server.baseUrl), 'the real URL is filled in')
    const auth = { authorization: `Bearer ${key}` }
    for (const [userId] of SAMPLE_BODY.values)
      await fetch(`${server.baseUrl}/v1/user/profiles/${userId}`, { method: 'DELETE', headers: auth })
    const work = mkdtempSync(join(dir, `${language}-`))
    const result = await runSnippet(snippet, work, withKey ? { [KEY_VARIABLE]: '' } : { [KEY_VARIABLE]: key })
    assert.equal(result.code, 0, result.out)
    for (const [userId, conan, titan] of SAMPLE_BODY.values) {
      const res = await fetch(`${server.baseUrl}/v1/user/profiles/${userId}`, { headers: auth })
      assert.equal(res.status, 200, `${language}: ${userId} was uploaded`)
      const { data } = (await res.json()) as { data: { attributes: Record<string, string> } }
      assert.deepEqual(data.attributes, { watch_conan: conan, watch_attack_on_titan: titan })
    }
  }

  for (const language of ['curl', 'node', 'sdk', 'cli'] as const) {
    test(`${language}, key filled in`, () => check(language, true))
    test(`${language}, key from ${KEY_VARIABLE}`, () => check(language, false))
  }
  test(
    'python (requests), key filled in',
    { skip: HAS_REQUESTS || IN_CI ? false : 'python3 with requests is not installed' },
    () => check('python', true),
  )
  test('python (requests), key from the environment', { skip: HAS_REQUESTS || IN_CI ? false : 'no requests' }, () =>
    check('python', false),
  )
  test('go (net/http)', { skip: HAS_GO || IN_CI ? false : 'no Go toolchain on this machine' }, () => check('go', true))

  test('a refused upload makes every snippet exit non-zero', async () => {
    const snippets = buildSnippets(server.baseUrl, 'tbk_wrong')
    for (const language of ['curl', 'node', 'cli'] as const) {
      const snippet = snippets.find((s) => s.language === language)
      assert.ok(snippet)
      const result = await runSnippet(snippet, mkdtempSync(join(dir, `bad-${language}-`)))
      assert.notEqual(result.code, 0, `${language} exits non-zero on a 401: ${result.out}`)
    }
  })
})
