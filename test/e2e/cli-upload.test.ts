import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { createClient, type TraitbaseClient } from '../../src/sdk/index.js'
import { createTestDatabase } from '../../src/storage/postgres/test-database.js'
import { BIN, ROOT, SERVER, runCli, type CliResult } from './processes.js'

// Black-box: the built CLI (`node bin/traitbase.js upload`) against the real server, on each backend.

interface Backend {
  readonly name: string
  /** Returns a reason to skip when the backend is unavailable here. */
  setup(dir: string): Promise<string | undefined>
  url(): string
  teardown(): Promise<void>
}

function sqliteBackend(): Backend {
  let url = ''
  return {
    name: 'SQLite',
    setup: async (dir) => {
      url = `sqlite:${join(dir, 'upload.db')}`
      return undefined
    },
    url: () => url,
    teardown: async () => undefined,
  }
}

function postgresBackend(): Backend {
  let db: { url: string; drop(): Promise<void> } | undefined
  return {
    name: 'PostgreSQL',
    setup: async () => {
      const created = await createTestDatabase()
      if ('skip' in created) return created.skip
      db = created
      return undefined
    },
    url: () => db?.url ?? '',
    teardown: async () => db?.drop(),
  }
}

const WIDE_COLUMNS = ['user_id', ...Array.from({ length: 59 }, (_, c) => `attr_${c + 1}`)]
const wideValue = (row: number, column: number): string => `r${row}-c${column}-ü`

/** Rows the CLI must reject in a file written with `bad`: no user_id, or a cell missing. */
const noUserId = (row: number): boolean => row % 500 === 250
const shortRow = (row: number): boolean => row % 700 === 350

function writeWideCsv(path: string, rows: number, bad = false): void {
  const lines = [WIDE_COLUMNS.join(',')]
  for (let r = 0; r < rows; r++) {
    const cells = [`r-${r}`, ...WIDE_COLUMNS.slice(1).map((_, c) => wideValue(r, c + 1))]
    if (bad && noUserId(r)) cells[0] = ''
    if (bad && shortRow(r)) cells.pop()
    lines.push(cells.join(','))
  }
  writeFileSync(path, `${lines.join('\n')}\n`)
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  describe(`traitbase upload (CLI, ${backend.name})`, () => {
    let skip: string | undefined
    let dir = ''
    let server: ServerProcess | undefined
    let key = ''
    let client: TraitbaseClient
    const upload = (...args: string[]): Promise<CliResult> =>
      runCli(['upload', ...args, '--url', server?.baseUrl ?? ''], { TRAITBASE_API_KEY: key })

    before(async () => {
      assert.ok(existsSync(SERVER), 'run `npm run build` first: the e2e tests spawn dist/')
      dir = mkdtempSync(join(tmpdir(), 'traitbase-cli-upload-'))
      skip = await backend.setup(dir)
      if (skip !== undefined) {
        process.stdout.write(`# skipping ${backend.name} CLI upload tests: ${skip}\n`)
        return
      }
      const created = await runCli(['keys', 'create', '--project', 'upload-e2e'], { DATABASE_URL: backend.url() })
      assert.equal(created.code, 0, created.stderr)
      key = created.stdout.trim().split('\n').at(-1) ?? ''
      server = await startServer({
        entry: SERVER,
        env: { DATABASE_URL: backend.url() },
        logFile: join(dir, 'server.log'),
      })
      client = createClient({ baseUrl: server.baseUrl, apiKey: key })
    })
    after(async () => {
      await server?.stop()
      await backend.teardown()
      rmSync(dir, { recursive: true, force: true })
    })

    test('CSV: quoting, embedded newlines, unicode, blanks skipped by default, bad rows in the rejects file', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const before = await client.uploadProfiles([{ user_id: 'a2', city: 'Paris', note: 'keep' }])
      assert.equal(before.sent, 1)
      const long = 'x'.repeat(129)
      const file = join(dir, 'people.csv')
      writeFileSync(
        file,
        '\ufeffuser_id,name,city,score,note\r\n' +
          'a1,"Smith, ""Jay""",東京,10,"multi\r\nline"\r\n' +
          'a2,Zoë,,20,\r\n' +
          ',noid,x,1,y\r\n' +
          'a3,x,y\r\n' +
          'a4,😀😀,Zürich,30,"a,b"\r\n' +
          `a5,${long},c,1,n\r\n`,
      )
      const r = await upload(file)
      assert.equal(r.code, 1, 'rows were rejected, so not every row landed')
      assert.match(r.stdout, /^uploaded: 3 rows sent, 3 rejected, 0 failed in .*; \d+ requests, 0 retries\n/)
      assert.match(r.stdout, new RegExp(`rejected rows with line numbers and reasons: .*people\\.csv\\.rejects\\.csv`))
      assert.equal(
        readFileSync(`${file}.rejects.csv`, 'utf8'),
        '_line,_reason,user_id,name,city,score,note\r\n' +
          '5,"user_id must be a non-empty string, got an empty string",,noid,x,1,y\r\n' +
          '6,has 3 cells but the header has 5,a3,x,y\r\n' +
          `8,"field ""name"": value is longer than 128 characters",a5,${long},c,1,n\r\n`,
      )
      assert.deepEqual((await client.getProfile('a1'))?.attributes, {
        name: 'Smith, "Jay"',
        city: '東京',
        score: '10',
        note: 'multi\r\nline',
      })
      assert.deepEqual(
        (await client.getProfile('a2'))?.attributes,
        { city: 'Paris', note: 'keep', name: 'Zoë', score: '20' },
        'blank cells left the stored attributes alone',
      )
      assert.deepEqual((await client.getProfile('a4'))?.attributes, {
        name: '😀😀',
        city: 'Zürich',
        score: '30',
        note: 'a,b',
      })
      assert.equal(await client.getProfile('a3'), null)
      assert.equal(await client.getProfile('a5'), null)
      assert.equal(existsSync(`${file}.checkpoint.json`), false, 'a finished upload leaves no checkpoint')

      // The rejects file, fixed, goes back in with its two extra columns ignored.
      const fixed = join(dir, 'fixed.csv')
      writeFileSync(
        fixed,
        readFileSync(`${file}.rejects.csv`, 'utf8')
          .replace(',,noid', ',a0,noid')
          .replace(',a3,x,y', ',a3,x,y,1,z')
          .replace(long, 'short'),
      )
      const again = await upload(fixed, '--ignore-columns', '_line,_reason')
      assert.equal(again.code, 0, again.stderr + again.stdout)
      assert.deepEqual((await client.getProfile('a0'))?.attributes, { name: 'noid', city: 'x', score: '1', note: 'y' })
      assert.deepEqual((await client.getProfile('a5'))?.attributes, { name: 'short', city: 'c', score: '1', note: 'n' })
      assert.equal(existsSync(`${fixed}.rejects.csv`), false)
    })

    test('SDK: the user ids . and .. upload, read back and delete (no URL path can carry them)', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const summary = await client.uploadProfiles([
        { user_id: '.', dots: 'one' },
        { user_id: '..', dots: 'two' },
      ])
      assert.equal(summary.sent, 2)
      assert.deepEqual({ ...(await client.getProfile('.'))?.attributes }, { dots: 'one' })
      assert.deepEqual({ ...(await client.getProfile('..'))?.attributes }, { dots: 'two' })
      assert.equal(await client.deleteProfile('..'), true)
      assert.equal(await client.getProfile('..'), null)
      assert.equal((await client.getProfile('.'))?.user_id, '.')
    })

    test('CSV --blank=clear erases; --delimiter; exit 0 when every row landed', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      await client.uploadProfiles([{ user_id: 'b1', plan: 'pro', city: 'Oslo' }])
      const file = join(dir, 'clear.tsv')
      writeFileSync(file, 'user_id;plan;city\nb1;;Bergen\n')
      const r = await upload(file, '--blank=clear', '--delimiter', ';', '--json')
      assert.equal(r.code, 0, r.stderr)
      const summary = JSON.parse(r.stdout) as Record<string, unknown>
      assert.equal(summary.complete, true)
      assert.equal(summary.sent, 1)
      assert.equal(summary.rejected, 0)
      assert.deepEqual((await client.getProfile('b1'))?.attributes, { city: 'Bergen' })
    })

    test('JSONL: numbers, booleans, unicode, __proto__, bad lines; --blank=clear', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      await client.uploadProfiles([{ user_id: 'j2', plan: 'basic', seats: '3' }])
      const file = join(dir, 'events.jsonl')
      writeFileSync(
        file,
        [
          '{"user_id":"j1","plan":"pro","n":42,"vip":true,"name":"漢字😀"}',
          '{"user_id":"j2","plan":""}',
          'not json',
          '{"user_id":"j3","bad":null}',
          '["x"]',
          '{"user_id":"__proto__","constructor":"c","__proto__":"p"}',
          '',
        ].join('\r\n'),
      )
      const r = await upload(file, '--blank=clear')
      assert.equal(r.code, 1)
      assert.match(r.stdout, /^uploaded: 3 rows sent, 3 rejected, 0 failed/)
      const rejects = readFileSync(`${file}.rejects.csv`, 'utf8').split('\r\n')
      assert.equal(rejects[0], '_line,_reason,_json')
      assert.match(rejects[1] ?? '', /^3,"not valid JSON: .*",not json$/)
      assert.equal(
        rejects[2],
        '4,"field ""bad"": must be a string, number or boolean, got null","{""user_id"":""j3"",""bad"":null}"',
      )
      assert.equal(rejects[3], '5,"must be a JSON object with a ""user_id""","[""x""]"')
      assert.equal(rejects.length, 5)
      assert.deepEqual((await client.getProfile('j1'))?.attributes, {
        plan: 'pro',
        n: '42',
        vip: 'true',
        name: '漢字😀',
      })
      assert.deepEqual((await client.getProfile('j2'))?.attributes, { seats: '3' }, '"" cleared plan')
      assert.deepEqual(Object.entries((await client.getProfile('__proto__'))?.attributes ?? {}).sort(), [
        ['__proto__', 'p'],
        ['constructor', 'c'],
      ])
    })

    test('resume after SIGKILL mid-upload: nothing acknowledged is sent again, and the final state is complete', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const rows = 4000
      const file = join(dir, 'wide.csv')
      writeWideCsv(file, rows, true)
      const bad = Array.from({ length: rows }, (_, r) => r).filter((r) => noUserId(r) || shortRow(r))
      const checkpoint = `${file}.checkpoint.json`
      const child = spawn(
        process.execPath,
        [BIN, 'upload', file, '--url', server!.baseUrl, '--concurrency', '1', '--progress-every', '0.2'],
        { cwd: ROOT, env: { ...process.env, TRAITBASE_API_KEY: key }, stdio: ['ignore', 'ignore', 'pipe'] },
      )
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      let killedAt = -1
      for (let i = 0; i < 3000 && child.exitCode === null; i++) {
        await new Promise((r) => setTimeout(r, 10))
        let done = 0
        try {
          done = (JSON.parse(readFileSync(checkpoint, 'utf8')) as { rowsDone: number }).rowsDone
        } catch {
          continue // not written yet, or being replaced
        }
        if (done >= 300) {
          child.kill('SIGKILL')
          killedAt = done
          break
        }
      }
      await exited
      assert.ok(killedAt > 0, 'the upload was killed mid-way')
      const saved = JSON.parse(readFileSync(checkpoint, 'utf8')) as { rowsDone: number }
      assert.ok(saved.rowsDone >= killedAt && saved.rowsDone < rows, `checkpoint at ${saved.rowsDone}`)

      const r = await upload(file, '--resume', '--json')
      assert.equal(r.code, 1, 'some rows were rejected')
      const summary = JSON.parse(r.stdout) as Record<string, number | boolean>
      assert.equal(summary.complete, true)
      assert.equal(summary.resumedFrom, saved.rowsDone, 'the acknowledged prefix is not sent again')
      assert.equal(summary.rows, rows)
      assert.equal(summary.rejected, bad.length)
      assert.equal(summary.sent, rows - bad.length)
      const listed = readFileSync(`${file}.rejects.csv`, 'utf8')
        .trim()
        .split('\r\n')
        .slice(1)
        .map((l) => Number(l.split(',')[0]))
      assert.deepEqual(
        listed.sort((a, b) => a - b),
        bad.map((row) => row + 2),
        'each bad row listed once, by its line, across both runs',
      )
      assert.match(r.stderr, new RegExp(`resuming after row ${saved.rowsDone.toLocaleString('en-US')}`))
      assert.equal(existsSync(checkpoint), false)

      const [first] = await pages(client, { field: 'user_id', op: 'starts_with', value: 'r-' })
      assert.equal(first?.count, rows - bad.length, 'every good row of the file is a stored user')
      const good = [0, saved.rowsDone - 1, saved.rowsDone, saved.rowsDone + 1, rows - 1, ...sample(rows, 40)]
      for (const r2 of good.filter((row) => !bad.includes(row))) {
        const p = await client.getProfile(`r-${r2}`)
        assert.equal(Object.keys(p?.attributes ?? {}).length, 59, `row ${r2} has all 59 attributes`)
        assert.equal(p?.attributes.attr_1, wideValue(r2, 1))
        assert.equal(p?.attributes.attr_59, wideValue(r2, 59))
      }
    })

    test('Ctrl-C stops gracefully: requests in flight finish, checkpoint saved, exit 1; --resume completes', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const rows = 3000
      const file = join(dir, 'interrupted.csv')
      writeWideCsv(file, rows)
      const child = spawn(process.execPath, [BIN, 'upload', file, '--url', server!.baseUrl, '--concurrency', '1'], {
        cwd: ROOT,
        env: { ...process.env, TRAITBASE_API_KEY: key },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
      const checkpoint = `${file}.checkpoint.json`
      for (let i = 0; i < 3000 && child.exitCode === null; i++) {
        await new Promise((r) => setTimeout(r, 10))
        try {
          if ((JSON.parse(readFileSync(checkpoint, 'utf8')) as { rowsDone: number }).rowsDone >= 200) break
        } catch {
          // not written yet
        }
      }
      child.kill('SIGINT')
      assert.equal(await exited, 1, stderr)
      assert.match(stderr, /SIGINT: finishing the requests in flight/)
      assert.match(stderr, /interrupted: every row before row [\d,]+ is done; run the same command with --resume/)
      assert.match(stdout, /^stopped: /)
      const saved = JSON.parse(readFileSync(checkpoint, 'utf8')) as { rowsDone: number }
      assert.ok(saved.rowsDone >= 200 && saved.rowsDone < rows, `checkpoint at ${saved.rowsDone}`)

      const r = await upload(file, '--resume', '--json')
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { resumedFrom: number }).resumedFrom, saved.rowsDone)
      for (const row of [0, saved.rowsDone - 1, saved.rowsDone, rows - 1]) {
        assert.equal((await client.getProfile(`r-${row}`))?.attributes.attr_59, wideValue(row, 59))
      }
    })

    test('--dry-run validates the whole file and sends nothing', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const file = join(dir, 'dry.csv')
      writeFileSync(file, 'user_id,a\nd1,1\nd2,2\n,3\n')
      const r = await runCli(['upload', file, '--dry-run'])
      assert.equal(r.code, 1)
      assert.equal(r.stdout.split('\n')[0], 'dry run: 3 rows, 2 valid, 1 rejected; would send 1 requests')
      assert.match(readFileSync(`${file}.rejects.csv`, 'utf8'), /^_line,_reason,user_id,a\r\n4,"user_id must be/)
      assert.equal(await client.getProfile('d1'), null)
    })

    test('usage errors exit 2 with one clear line; a wrong key stops at once with the 401', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const noId = join(dir, 'noid.csv')
      writeFileSync(noId, 'id,a\n1,2\n')
      const cases: [string[], RegExp][] = [
        [[join(dir, 'missing.csv')], /^error: cannot read .*missing\.csv: no such file\n$/],
        [[noId], /^error: line 1: header: there is no "user_id" column \(columns: id, a\)\n$/],
        [[noId, '--blank', 'maybe'], /^error: --blank must be clear or skip, got "maybe"\n$/],
        [[join(dir, 'people.csv.rejects.csv'), '--format', 'xml'], /^error: --format must be csv or jsonl/],
      ]
      for (const [args, stderr] of cases) {
        const r = await upload(...args)
        assert.equal(r.code, 2, r.stderr)
        assert.match(r.stderr, stderr)
      }
      const file = join(dir, 'k.csv')
      writeFileSync(file, 'user_id,a\nk1,1\n')
      const r = await runCli(['upload', file, '--url', server!.baseUrl, '--key', 'tbk_wrong'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /error: POST \/v1\/user\/profiles: 401 /)
      assert.match(r.stdout, /^stopped: 0 rows sent, 0 rejected, 1 failed/)
      assert.equal(existsSync(`${file}.checkpoint.json`), true, 'the checkpoint stays for --resume')
    })

    test('not a terminal: plain progress lines on stderr, the summary alone on stdout', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const file = join(dir, 'progress.csv')
      writeWideCsv(file, 600)
      const r = await upload(file, '--progress-every', '0.05', '--concurrency', '1')
      assert.equal(r.code, 0, r.stderr)
      const lines = r.stderr.trim().split('\n')
      assert.ok(lines.length >= 2, r.stderr)
      for (const line of lines) {
        assert.match(
          line,
          /^progress: [\d.]+% [\d,]+\/~?[\d,]+ rows, [\d,]+ rows\/s, ETA \S+, retries \d+, rejects \d+$/,
        )
      }
      assert.match(lines.at(-1) ?? '', /^progress: 100% 600\/600 rows/)
      assert.equal(r.stdout.split('\n').length, 2)
    })
  })
}

async function pages(client: TraitbaseClient, where: Parameters<TraitbaseClient['querySegment']>[0]) {
  const out = []
  for await (const page of client.querySegment(where, { limit: 1 })) {
    out.push(page)
    break
  }
  return out
}

function sample(n: number, k: number): number[] {
  return Array.from({ length: k }, () => Math.floor(Math.random() * n))
}
