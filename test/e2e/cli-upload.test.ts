import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import {
  appendFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { createClient, type TraitbaseClient } from '../../src/sdk/index.js'
import { BIN, ROOT, SERVER, postgresTestDatabase, runCli, type CliResult } from './processes.js'

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
  return { name: 'PostgreSQL', ...postgresTestDatabase() }
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
      assert.match(r.stdout, /rejected rows with line numbers and reasons: .*events\.jsonl\.rejects\.jsonl\n/)
      const rejects = readFileSync(`${file}.rejects.jsonl`, 'utf8').split('\n')
      assert.match(rejects[0] ?? '', /^\{"_line":3,"_reason":"not valid JSON: .*","_text":"not json"\}$/)
      assert.equal(
        rejects[1],
        '{"_line":4,"_reason":"field \\"bad\\": must be a string, number or boolean, got null","user_id":"j3","bad":null}',
      )
      assert.equal(rejects[2], '{"_line":5,"_reason":"must be a JSON object with a \\"user_id\\"","_text":"[\\"x\\"]"}')
      assert.equal(rejects.length, 4)
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

    test('resume after SIGKILL mid-upload: the resumed run starts at the checkpoint, and the final state is complete', async (t) => {
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
      // Rows read but never sent are "not sent (interrupted)", not failures, and there is no error to report.
      assert.match(stdout, /^stopped: [\d,]+ rows sent, 0 rejected, 0 failed(, [\d,]+ not sent \(interrupted\))? in /)
      assert.doesNotMatch(stderr, /error:/)
      const saved = JSON.parse(readFileSync(checkpoint, 'utf8')) as { rowsDone: number }
      assert.ok(saved.rowsDone >= 200 && saved.rowsDone < rows, `checkpoint at ${saved.rowsDone}`)

      const r = await upload(file, '--resume', '--json')
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { resumedFrom: number }).resumedFrom, saved.rowsDone)
      for (const row of [0, saved.rowsDone - 1, saved.rowsDone, rows - 1]) {
        assert.equal((await client.getProfile(`r-${row}`))?.attributes.attr_59, wideValue(row, 59))
      }
    })

    test('scattered blank cells under --blank=skip: every row lands, and the summary says why requests are small', async (t) => {
      if (skip !== undefined) return t.skip(skip)
      const columns = Array.from({ length: 10 }, (_, i) => `c${i}`)
      // Row r leaves blank the columns of the bits of r: 300 rows, nearly every one a different pattern.
      const lines = Array.from({ length: 300 }, (_, r) =>
        [`sp${r}`, ...columns.map((_, c) => ((r >> c) & 1 ? '' : `v${c}`))].join(','),
      )
      const file = join(dir, 'sparse.csv')
      writeFileSync(file, `user_id,${columns.join(',')}\n${lines.join('\n')}\n`)
      const sparse = await upload(file)
      assert.equal(sparse.code, 0, sparse.stderr)
      assert.match(sparse.stderr, /rows per request: blank cells in different columns .* --blank=clear packs 100/)
      const expected = Object.fromEntries(columns.flatMap((name, c) => ((5 >> c) & 1 ? [] : [[name, `v${c}`]])))
      assert.deepEqual({ ...(await client.getProfile('sp5'))?.attributes }, expected)
      const dense = join(dir, 'dense.csv')
      writeFileSync(
        dense,
        `user_id,${columns.join(',')}\n${lines.map((l) => l.replace(/,(?=,|$)/g, ',x')).join('\n')}\n`,
      )
      const packed = await upload(dense)
      assert.equal(packed.code, 0, packed.stderr)
      assert.doesNotMatch(packed.stderr, /rows per request/)
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
        [[noId], /^error: .*noid\.csv line 1: header: there is no "user_id" column \(columns: id, a\)\n$/],
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
      assert.match(r.stderr, /error: POST \/v1\/user\/profiles: 401 Unknown or revoked API key/)
      assert.match(r.stderr, /check the API key \(--key or TRAITBASE_API_KEY\)/)
      assert.doesNotMatch(r.stderr, /--resume/, 'resuming cannot help until the key is fixed')
      assert.match(r.stdout, /^stopped: 0 rows sent, 0 rejected, 1 failed/)
      assert.equal(existsSync(`${file}.checkpoint.json`), false, 'nothing was done, so there is nothing to resume')
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
          /^progress: [\d.]+% [\d,]+\/(~?[\d,]+|\?) rows, [\d,]+ rows\/s, ETA \S+, retries \d+, rejects \d+$/,
        )
      }
      assert.match(lines.at(-1) ?? '', /^progress: 100% 600\/600 rows/)
      assert.equal(r.stdout.split('\n').length, 2)
    })
  })
}

describe('traitbase upload: input files, paths and messages (CLI, SQLite)', () => {
  let dir = ''
  let server: ServerProcess | undefined
  let key = ''
  let client: TraitbaseClient
  const upload = (...args: string[]): Promise<CliResult> =>
    runCli(['upload', ...args, '--url', server?.baseUrl ?? ''], { TRAITBASE_API_KEY: key })
  const write = (name: string, content: string | Buffer): string => {
    const file = join(dir, name)
    writeFileSync(file, content)
    return file
  }

  before(async () => {
    assert.ok(existsSync(SERVER), 'run `npm run build` first: the e2e tests spawn dist/')
    dir = mkdtempSync(join(tmpdir(), 'traitbase-cli-files-'))
    const databaseUrl = `sqlite:${join(dir, 'files.db')}`
    const created = await runCli(['keys', 'create', '--project', 'files-e2e'], { DATABASE_URL: databaseUrl })
    assert.equal(created.code, 0, created.stderr)
    key = created.stdout.trim().split('\n').at(-1) ?? ''
    server = await startServer({ entry: SERVER, env: { DATABASE_URL: databaseUrl }, logFile: join(dir, 'server.log') })
    client = createClient({ baseUrl: server.baseUrl, apiKey: key })
  })
  after(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('a quote inside an unquoted cell is a character: --dry-run and the upload accept it (F1)', async () => {
    const file = write('quote.csv', 'user_id,plan\nq1,p\nq2,x"y\nq3,12" pizza\n')
    const dry = await runCli(['upload', file, '--dry-run'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal(dry.stdout, 'dry run: 3 rows, 3 valid, 0 rejected; would send 1 requests\n')
    const r = await upload(file)
    assert.equal(r.code, 0, r.stderr)
    assert.equal((await client.getProfile('q2'))?.attributes.plan, 'x"y')
    assert.equal((await client.getProfile('q3'))?.attributes.plan, '12" pizza')
  })

  test('a quote never closed: every row before it is sent and counted, one error line with its line, exit 2, no --resume (F1, F10)', async () => {
    // 6,000 rows of ~16 bytes: the broken row sits in a later 64 KiB chunk, after thousands of rows in the same one.
    const lines = ['user_id,v']
    for (let i = 0; i < 6000; i++) lines.push(i === 5000 ? `uq-${i},"opened` : `uq-${i},value-${i}`)
    const file = write('unclosed.csv', `${lines.join('\n')}\n`)
    const r = await upload(file, '--json', '--concurrency', '2')
    assert.equal(r.code, 2, r.stderr)
    assert.match(
      r.stderr,
      /^error: .*unclosed\.csv line 5002: a quote in the record starting here is never closed \(the file ends inside it\)$/m,
    )
    assert.doesNotMatch(r.stderr, /--resume/, 'resuming cannot get past a broken file')
    const summary = JSON.parse(r.stdout) as Record<string, unknown>
    assert.deepEqual(
      [summary.complete, summary.sent, summary.rejected, summary.failed, summary.notSent, summary.checkpoint],
      [false, 5000, 0, 0, 0, null],
    )
    assert.equal(existsSync(`${file}.checkpoint.json`), false)
    assert.equal((await client.getProfile('uq-4999'))?.attributes.v, 'value-4999')
    assert.equal(await client.getProfile('uq-5001'), null)

    const dry = await runCli(['upload', file, '--dry-run'])
    assert.equal(dry.code, 2)
    assert.equal(dry.stdout, 'dry run (stopped): 5,000 rows, 5,000 valid, 0 rejected; would send 50 requests\n')
    assert.match(dry.stderr, /^error: .*unclosed\.csv line 5002: a quote/)
  })

  test('an unclosed quote in a big file stops within 8 MiB, naming the line where its record started; memory stays flat (F6)', async () => {
    // 96 MiB after the quote, written piecewise so the test process stays small (a child's peak RSS
    // as Node reports it can include the parent's memory at the time it was spawned).
    const file = write('runaway.csv', 'user_id,a\nu1,1\nu2,"opened here\n')
    const piece = Buffer.alloc(1024 * 1024, 'u,x\n')
    for (let i = 0; i < 96; i++) appendFileSync(file, piece)
    const r = await runCli(['upload', file, '--dry-run', '--json'])
    assert.equal(r.code, 2, r.stderr)
    assert.match(
      r.stderr,
      /^error: .*runaway\.csv line 3: the record starting here is over 8 MiB \(the limit\): unclosed quote starting at line 3\?\n$/,
    )
    const summary = JSON.parse(r.stdout) as { rows: number; peakRssBytes: number }
    assert.equal(summary.rows, 1)
    assert.ok(summary.peakRssBytes < 160 * 1024 * 1024, `peak RSS ${summary.peakRssBytes} bytes`)
    rmSync(file)
  })

  test('--rejects or --checkpoint that is the input (path, symlink, hard link) or each other: refused, the input untouched (F2)', async () => {
    const file = write('self.csv', 'user_id,a\ns1,1\n')
    symlinkSync(file, join(dir, 'self-link.csv'))
    linkSync(file, join(dir, 'self-hard.csv'))
    const cases: string[][] = [
      ['--checkpoint', file],
      ['--rejects', file],
      ['--rejects', join(dir, '.', 'self.csv')],
      ['--rejects', join(dir, 'self-link.csv')],
      ['--checkpoint', join(dir, 'self-hard.csv')],
      ['--rejects', join(dir, 'same.csv'), '--checkpoint', join(dir, 'same.csv')],
    ]
    for (const args of cases) {
      for (const dry of [[], ['--dry-run']]) {
        if (dry.length > 0 && args.includes('--checkpoint')) continue // --dry-run writes no checkpoint
        const r = await upload(file, ...args, ...dry)
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
        assert.match(r.stderr, /^error: .*(is the input file itself|are the same file).*\n$/, args.join(' '))
        assert.equal(readFileSync(file, 'utf8'), 'user_id,a\ns1,1\n', args.join(' '))
      }
    }
    assert.equal(await client.getProfile('s1'), null)
  })

  test('CRLF, LF and CR mixed in one file: every row lands with its own value, no stray \\r (F3)', async () => {
    const m = write('mixed.csv', 'user_id,plan\r\nmx1,a\r\nmx2,b\nmx3,c\rmx4,d\r\n')
    const r = await upload(m)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^uploaded: 4 rows sent, 0 rejected/)
    for (const [id, plan] of [
      ['mx1', 'a'],
      ['mx2', 'b'],
      ['mx3', 'c'],
      ['mx4', 'd'],
    ]) {
      assert.equal((await client.getProfile(id as string))?.attributes.plan, plan)
    }
    const m2 = write('mixed2.csv', 'user_id,plan\nmy1,a\nmy2,b\r\nmy3,c\n')
    assert.equal((await upload(m2)).code, 0)
    assert.equal((await client.getProfile('my2'))?.attributes.plan, 'b')

    // A CRLF file with a quoted bare LF: the line numbers after it are right, and messages stay on one line.
    const q = write('quoted-lf.csv', 'user_id,note\r\nql1,"a\nb"\r\nql2,x,extra\r\n')
    const rq = await upload(q)
    assert.equal(rq.code, 1)
    assert.match(readFileSync(`${q}.rejects.csv`, 'utf8'), /\r\n4,has 3 cells but the header has 2,ql2,x,extra\r\n$/)
    const h = write('header-nl.csv', 'user_id,"a\r\nb","a\r\nb"\r\nh1,1,2\r\n')
    const rh = await upload(h)
    assert.equal(rh.code, 2)
    assert.match(rh.stderr, /^error: .*header-nl\.csv line 1: header: column 3 "a\\r\\nb" appears more than once\n$/)
  })

  test('a file that is not UTF-8 is refused with its line and byte offset, CSV and JSONL; rows before it are sent (F4)', async () => {
    const csv = write('latin1.csv', Buffer.concat([Buffer.from('user_id,city\nl1,caf'), Buffer.from([0xe9, 0x0a])]))
    const r = await upload(csv)
    assert.equal(r.code, 2)
    assert.equal(
      r.stderr,
      `error: ${csv} is not valid UTF-8 near line 2 (byte offset 19): convert it to UTF-8, e.g. iconv -f latin1 -t utf-8\n`,
    )
    assert.equal(await client.getProfile('l1'), null)
    const jsonl = write(
      'latin1.jsonl',
      Buffer.concat([Buffer.from('{"user_id":"l2","city":"caf'), Buffer.from([0xe9, 0x22, 0x7d, 0x0a])]),
    )
    const rj = await upload(jsonl)
    assert.equal(rj.code, 2)
    assert.match(rj.stderr, /^error: .*latin1\.jsonl is not valid UTF-8 near line 1 \(byte offset 27\): convert it/)
    assert.equal(await client.getProfile('l2'), null)

    const later = write(
      'latin1-later.csv',
      Buffer.concat([Buffer.from('user_id,city\nl3,ok\nl4,caf'), Buffer.from([0xe9])]),
    )
    const rl = await upload(later)
    assert.equal(rl.code, 2)
    assert.match(rl.stdout, /^stopped: 1 rows sent, 0 rejected, 0 failed/)
    assert.match(rl.stderr, /near line 3 \(byte offset 25\)/)
    assert.equal((await client.getProfile('l3'))?.attributes.city, 'ok')
  })

  test('the rejects file goes back in as documented: JSONL rejects are JSON Lines, a .tsv gives comma-separated rejects (F7)', async () => {
    const jsonl = write(
      'round.jsonl',
      [
        '{"user_id":"rt1","n":1.50,"big":12345678901234567890}',
        'not json',
        '{"user_id":"","plan":"pro"}',
        '{"user_id":"rt4","plan":"ok"}',
      ].join('\n'),
    )
    const r = await upload(jsonl)
    assert.equal(r.code, 1)
    const rejects = `${jsonl}.rejects.jsonl`
    const lines = readFileSync(rejects, 'utf8').split('\n')
    assert.match(
      lines[0] ?? '',
      /^\{"_line":1,"_reason":"field \\"big\\": .*","user_id":"rt1","n":1\.50,"big":12345678901234567890\}$/,
    )
    assert.match(lines[1] ?? '', /^\{"_line":2,"_reason":"not valid JSON: .*","_text":"not json"\}$/)
    assert.match(lines[2] ?? '', /^\{"_line":3,"_reason":"user_id must be .*","user_id":"","plan":"pro"\}$/)
    // Fix them as a user would, keeping _line and _reason, and upload the file as the README says.
    writeFileSync(
      rejects,
      lines
        .join('\n')
        .replace('12345678901234567890', '"12345678901234567890"')
        .replace('"_text":"not json"', '"user_id":"rt2","plan":"fixed"')
        .replace('"user_id":""', '"user_id":"rt3"'),
    )
    const again = await upload(rejects, '--ignore-columns', '_line,_reason')
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.deepEqual((await client.getProfile('rt1'))?.attributes, { n: '1.5', big: '12345678901234567890' })
    assert.deepEqual((await client.getProfile('rt2'))?.attributes, { plan: 'fixed' })
    assert.deepEqual((await client.getProfile('rt3'))?.attributes, { plan: 'pro' })

    const tsv = write('round.tsv', 'user_id\tplan\tnote\nrt5\tpro\ta,b\n\tbasic\tx\n')
    assert.equal((await upload(tsv)).code, 1)
    const tsvRejects = `${tsv}.rejects.csv`
    assert.equal(
      readFileSync(tsvRejects, 'utf8'),
      '_line,_reason,user_id,plan,note\r\n3,"user_id must be a non-empty string, got an empty string",,basic,x\r\n',
    )
    writeFileSync(tsvRejects, readFileSync(tsvRejects, 'utf8').replace(',,basic', ',rt6,basic'))
    const tsvAgain = await upload(tsvRejects, '--ignore-columns', '_line,_reason')
    assert.equal(tsvAgain.code, 0, tsvAgain.stderr)
    assert.deepEqual((await client.getProfile('rt6'))?.attributes, { plan: 'basic', note: 'x' })

    const wrong = await upload(jsonl, '--rejects', join(dir, 'r.csv'))
    assert.equal(wrong.code, 2)
    assert.match(
      wrong.stderr,
      /^error: --rejects .*r\.csv: rejects of a JSON Lines file are JSON Lines; name it \.jsonl or \.ndjson\n$/,
    )
  })

  test('a damaged checkpoint, a missing or unwritable folder, a folder as a file: one line, exit 2, nothing sent (F8, F9)', async () => {
    const file = write('paths.csv', 'user_id,a\npa1,1\n')
    const checkpoint = `${file}.checkpoint.json`
    for (const text of [
      'null',
      '{}',
      'not json',
      '[1]',
      '{"version":1}',
      '{"version":1,"file":{"path":"x","size":"1","mtimeMs":1},"format":"csv","delimiter":",","blank":"skip","rowsDone":0,"lineDone":0}',
      '{"version":1,"file":{"path":"x","size":1,"mtimeMs":1},"format":"csv","delimiter":",","blank":"skip","rowsDone":-1,"lineDone":0}',
    ]) {
      writeFileSync(checkpoint, text)
      const r = await upload(file, '--resume')
      assert.equal(r.code, 2, text)
      assert.match(
        r.stderr,
        /^error: the checkpoint .* is damaged \(.*\); delete it, or run without --resume to start from the first row\n$/,
        text,
      )
    }
    rmSync(checkpoint)
    mkdirSync(join(dir, 'a-folder'))
    const cases: [string[], RegExp][] = [
      [
        ['--rejects', '/nonexistent/dir/r.csv'],
        /^error: --rejects \/nonexistent\/dir\/r\.csv: the folder \/nonexistent\/dir does not exist\n$/,
      ],
      [['--rejects', '/nonexistent/dir/r.csv', '--dry-run'], /^error: --rejects .*: the folder .* does not exist\n$/],
      [['--rejects', join(dir, 'a-folder')], /^error: --rejects .*a-folder is a folder\n$/],
      [['--rejects', join(file, 'r.csv')], /^error: --rejects .*: .*paths\.csv is not a folder\n$/],
      [
        ['--checkpoint', '/nonexistent/c.json'],
        /^error: --checkpoint \/nonexistent\/c\.json: the folder \/nonexistent does not exist\n$/,
      ],
      [['--checkpoint', join(dir, 'a-folder')], /^error: --checkpoint .*a-folder is a folder\n$/],
    ]
    for (const [args, stderr] of cases) {
      const r = await upload(file, ...args)
      assert.equal(r.code, 2, args.join(' '))
      assert.match(r.stderr, stderr)
    }
    assert.equal(await client.getProfile('pa1'), null, 'nothing was sent')

    // --dry-run never reads an old rejects file (it starts a new one); --resume streams it and says so if it is broken.
    writeFileSync(`${file}.rejects.csv`, '_line,_reason,user_id\n3,"broken\n')
    const dry = await runCli(['upload', file, '--dry-run'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal(existsSync(`${file}.rejects.csv`), false)
    writeFileSync(`${file}.rejects.csv`, '_line,_reason,user_id\n3,"broken\n')
    const stat = statSync(file)
    writeFileSync(
      checkpoint,
      JSON.stringify({
        version: 1,
        file: { path: file, size: stat.size, mtimeMs: stat.mtimeMs },
        format: 'csv',
        delimiter: ',',
        blank: 'skip',
        rowsDone: 0,
        lineDone: 2,
      }),
    )
    const resumed = await upload(file, '--resume')
    assert.equal(resumed.code, 2)
    assert.match(
      resumed.stderr,
      /error: cannot read the rejects file .* of the previous run \(.*\); delete it and the checkpoint to start over\n$/,
    )
  })

  test('no --resume advice where resuming cannot help: a wrong URL (404); bad usage exits 2 (F10, F15)', async () => {
    const file = write('wrong-url.csv', 'user_id,a\nwu1,1\n')
    const r = await runCli(['upload', file, '--url', `${server!.baseUrl}/not-here`], { TRAITBASE_API_KEY: key })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /error: POST \/v1\/user\/profiles: 404 /)
    assert.match(r.stderr, /check --url/)
    assert.doesNotMatch(r.stderr, /--resume/)
    assert.equal(existsSync(`${file}.checkpoint.json`), false)

    const cases: [string[], RegExp][] = [
      [['upload'], /^error: missing required argument 'FILE'/],
      [['upload', file, '--bogus'], /^error: unknown option '--bogus'/],
      [['upload', file, '--blank'], /^error: option '--blank <clear\|skip>' argument missing/],
      [['upload', file, '--concurrency', 'lots'], /^error: --concurrency must be an integer/],
    ]
    for (const [args, stderr] of cases) {
      const u = await runCli(args, { TRAITBASE_API_KEY: key, TRAITBASE_URL: server!.baseUrl })
      assert.equal(u.code, 2, args.join(' '))
      assert.match(u.stderr, stderr)
    }
    assert.equal((await runCli(['upload', '--help'])).code, 0)
  })

  test('a header-only file ends on a sane progress line (F16)', async () => {
    const file = write('header-only.csv', 'user_id,plan\n')
    const r = await upload(file, '--progress-every', '0.05')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^uploaded: 0 rows sent, 0 rejected, 0 failed/)
    assert.match(
      r.stderr.trim().split('\n').at(-1) ?? '',
      /^progress: 100% 0 rows, 0 rows\/s, ETA 0s, retries 0, rejects 0$/,
    )
  })

  test('JSONL: a repeated key is a rejected row naming it; a CSV sent as --format jsonl stops with a format error (F18)', async () => {
    const file = write(
      'dup.jsonl',
      '{"user_id":"dk1","a":"1","a":"2"}\n{"user_id":"dk2","t":"10:00","t":"11:00"}\n{"user_id":"dk3","a":"1"}\n',
    )
    const r = await upload(file)
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^uploaded: 1 rows sent, 2 rejected/)
    assert.deepEqual(
      readFileSync(`${file}.rejects.jsonl`, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { _reason: string })._reason),
      ['key "a" appears more than once', 'key "t" appears more than once'],
    )
    assert.equal(await client.getProfile('dk1'), null)

    const csv = write('really-csv.csv', 'user_id,plan\nfc1,pro\nfc2,basic\n')
    const f = await upload(csv, '--format', 'jsonl')
    assert.equal(f.code, 2)
    assert.match(
      f.stderr,
      /^error: .*really-csv\.csv line 1: not JSON Lines: the first line is not a JSON object; is this a CSV file\? Then pass --format csv\n$/,
    )
    assert.equal(existsSync(`${csv}.rejects.jsonl`), false)
  })
})

/** A server on a real port whose answers a test scripts: each request is answered at once, late, or never. */
interface ScriptedServer {
  readonly url: string
  /** Rows in requests answered 200 so far. */
  ackedRows(): number
  ackedRequests(): number
  close(): Promise<void>
}

async function scriptedServer(
  answer: (request: number) => 'ok' | 'hang' | { delayMs: number },
): Promise<ScriptedServer> {
  let acked = 0
  let ackedRows = 0
  let requests = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const plan = answer(requests++)
      if (plan === 'hang') return
      const rows = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { values: unknown[] }).values.length
      const reply = (): void => {
        acked++
        ackedRows += rows
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"msg":"Success","timestamp":1}')
      }
      if (plan === 'ok') reply()
      else setTimeout(reply, plan.delayMs)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    ackedRows: () => ackedRows,
    ackedRequests: () => acked,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function startCli(args: readonly string[]): { child: ChildProcess; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, TRAITBASE_API_KEY: 'tbk_scripted' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
  const result = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  return { child, result }
}

async function until(what: string, ready: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!ready()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('traitbase upload: interruptions and the checkpoint (CLI against a scripted server)', () => {
  let dir = ''
  let file = ''
  const rows = 1000
  before(() => {
    assert.ok(existsSync(BIN))
    dir = mkdtempSync(join(tmpdir(), 'traitbase-cli-interrupt-'))
    file = join(dir, 'rows.csv')
    writeFileSync(file, `user_id,a\n${Array.from({ length: rows }, (_, i) => `ir-${i},${i}`).join('\n')}\n`)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))
  const rowsDone = (): number =>
    (JSON.parse(readFileSync(`${file}.checkpoint.json`, 'utf8')) as { rowsDone: number }).rowsDone

  test('Ctrl-C twice while the server hangs: exits 130 with every acknowledged row in the checkpoint (F11)', async () => {
    const server = await scriptedServer((i) => (i < 3 ? 'ok' : 'hang'))
    try {
      const { child, result } = startCli(['upload', file, '--url', server.url, '--concurrency', '1'])
      await until('3 acknowledged requests', () => server.ackedRequests() === 3)
      child.kill('SIGINT')
      let stderr = ''
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
      await until('the first Ctrl-C to be seen', () => stderr.includes('SIGINT: finishing the requests in flight'))
      child.kill('SIGINT')
      const r = await result
      assert.equal(r.code, 130, r.stderr)
      assert.equal(rowsDone(), 300, 'the 3 acknowledged requests are behind the checkpoint')
      assert.match(
        r.stderr,
        /saved the checkpoint: every row before row 300 is done; run the same command with --resume/,
      )
    } finally {
      await server.close()
    }
  })

  test('kill -9 loses at most the last 0.5 s: acknowledged rows reach the checkpoint even when nothing else happens (F11)', async () => {
    const server = await scriptedServer((i) => (i < 2 ? 'ok' : 'hang'))
    try {
      const { child, result } = startCli(['upload', file, '--url', server.url, '--concurrency', '1'])
      await until('2 acknowledged requests', () => server.ackedRequests() === 2)
      await new Promise((r) => setTimeout(r, 1000))
      child.kill('SIGKILL')
      await result
      assert.equal(rowsDone(), 200)
    } finally {
      await server.close()
    }
  })

  test('Ctrl-C: rows read but never sent are "not sent (interrupted)", not failed; sent is what the server acknowledged (F10)', async () => {
    const server = await scriptedServer(() => ({ delayMs: 100 }))
    try {
      const { child, result } = startCli(['upload', file, '--url', server.url, '--concurrency', '1', '--json'])
      await until('2 acknowledged requests', () => server.ackedRequests() >= 2)
      child.kill('SIGINT')
      const r = await result
      assert.equal(r.code, 1, r.stderr)
      const summary = JSON.parse(r.stdout) as Record<string, unknown>
      assert.equal(summary.interrupted, true)
      assert.equal(summary.sent, server.ackedRows())
      assert.equal(summary.failed, 0)
      assert.ok((summary.notSent as number) > 0, `notSent ${String(summary.notSent)}`)
      assert.equal(summary.error, null)
      assert.equal(rowsDone(), server.ackedRows())
      assert.doesNotMatch(r.stderr, /error:/)
      assert.match(
        r.stderr,
        /interrupted: every row before row [\d,]+ is done; run the same command with --resume to continue/,
      )
    } finally {
      await server.close()
    }
  })
})

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
