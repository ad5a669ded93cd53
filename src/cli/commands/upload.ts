import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
} from 'node:fs'
import { rmSync, writeFileSync, writeSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import { parse as parseCsv } from 'csv-parse/sync'
import { BatchPacker, createClient, splitRecord } from '../../sdk/index.js'
import type { RowReport, UploadProgress } from '../../sdk/index.js'
import type { Output } from '../output.js'
import { formatCount, formatDuration, ProgressReporter, type ProgressStream } from '../progress.js'
import { InputFileError, readCsvRows } from '../readers/csv.js'
import { readJsonlRows } from '../readers/jsonl.js'
import type { BlankPolicy, SourceRow } from '../readers/source-row.js'

/** Options of `traitbase upload FILE`, as commander hands them over (strings, unvalidated). */
export interface UploadCommandOptions {
  readonly url?: string
  readonly key?: string
  readonly format?: string
  readonly delimiter?: string
  /** `clear` or `skip`; default `skip` (see README: a blank cell never erases data unless asked). */
  readonly blank?: string
  readonly rejects?: string
  readonly checkpoint?: string
  readonly ignoreColumns?: string
  readonly resume?: boolean
  readonly dryRun?: boolean
  readonly concurrency?: string
  readonly progressEvery?: string
  readonly json?: boolean
}

export interface UploadDeps {
  readonly out: Output
  /** Progress goes here (a live bar when it is a TTY). */
  readonly progress: ProgressStream
  readonly env: Readonly<Record<string, string | undefined>>
  readonly fetch?: typeof globalThis.fetch
  /** Aborting it stops reading; requests in flight finish and the checkpoint is written. */
  readonly signal?: AbortSignal
}

/** Exit codes: every row landed; some row did not (rejected, failed, interrupted); bad usage or unreadable file. */
export const EXIT_OK = 0
export const EXIT_INCOMPLETE = 1
export const EXIT_USAGE = 2

type Format = 'csv' | 'jsonl'

interface Settings {
  readonly path: string
  readonly format: Format
  readonly delimiter: string
  readonly blank: BlankPolicy
  readonly ignore: ReadonlySet<string>
  readonly rejectsPath: string
  readonly checkpointPath: string
  readonly concurrency: number
  readonly progressEveryMs: number
}

/** What `--resume` continues from. Only ever covers a prefix of rows that all landed or were rejected. */
interface Checkpoint {
  readonly version: 1
  readonly file: { readonly path: string; readonly size: number; readonly mtimeMs: number }
  readonly format: Format
  readonly delimiter: string
  readonly blank: BlankPolicy
  /** Data rows of the file (blank lines not counted) that need no further work: stored or rejected. */
  readonly rowsDone: number
  /** Line where row `rowsDone` starts (or any line after the rows read); rejects from there on are dropped on resume. */
  readonly lineDone: number
}

class UsageError extends Error {}

const CHECKPOINT_EVERY_MS = 500

/**
 * `traitbase upload FILE`: streams a CSV or JSONL file through the SDK. Returns the exit code;
 * problems are printed, never thrown.
 */
export async function uploadFile(file: string, options: UploadCommandOptions, deps: UploadDeps): Promise<number> {
  const { out } = deps
  let settings: Settings
  try {
    settings = resolveSettings(file, options)
  } catch (error) {
    out.err(`error: ${(error as Error).message}`)
    return EXIT_USAGE
  }
  try {
    return options.dryRun === true ? await dryRun(settings, options, deps) : await upload(settings, options, deps)
  } catch (error) {
    if (error instanceof UsageError || error instanceof InputFileError) {
      out.err(`error: ${error.message}`)
      return EXIT_USAGE
    }
    throw error
  }
}

function resolveSettings(file: string, o: UploadCommandOptions): Settings {
  const path = resolve(file)
  let stat
  try {
    stat = statSync(path)
  } catch {
    throw new UsageError(`cannot read ${file}: no such file`)
  }
  if (!stat.isFile()) throw new UsageError(`${file} is not a file`)
  const ext = extname(path).toLowerCase()
  let format: Format
  if (o.format !== undefined) {
    if (o.format !== 'csv' && o.format !== 'jsonl')
      throw new UsageError(`--format must be csv or jsonl, got "${o.format}"`)
    format = o.format
  } else if (ext === '.csv' || ext === '.tsv') format = 'csv'
  else if (ext === '.jsonl' || ext === '.ndjson') format = 'jsonl'
  else throw new UsageError(`cannot tell the format of ${file} from its extension; pass --format csv or --format jsonl`)
  const delimiter = o.delimiter === '\\t' ? '\t' : (o.delimiter ?? (ext === '.tsv' ? '\t' : ','))
  if ([...delimiter].length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new UsageError(
      `--delimiter must be one character other than a quote or newline, got ${JSON.stringify(delimiter)}`,
    )
  }
  const blank = o.blank ?? 'skip'
  if (blank !== 'clear' && blank !== 'skip') throw new UsageError(`--blank must be clear or skip, got "${blank}"`)
  const concurrency = Number(o.concurrency ?? 4)
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`--concurrency must be an integer from 1 to 64, got "${o.concurrency}"`)
  }
  const progressEvery = Number(o.progressEvery ?? 5)
  if (!Number.isFinite(progressEvery) || progressEvery <= 0) {
    throw new UsageError(`--progress-every must be a positive number of seconds, got "${o.progressEvery}"`)
  }
  const ignore = new Set(
    (o.ignoreColumns ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
  if (ignore.has('user_id')) throw new UsageError('--ignore-columns cannot drop user_id')
  return {
    path,
    format,
    delimiter,
    blank,
    ignore,
    rejectsPath: resolve(o.rejects ?? `${file}.rejects.csv`),
    checkpointPath: resolve(o.checkpoint ?? `${file}.checkpoint.json`),
    concurrency,
    progressEveryMs: progressEvery * 1000,
  }
}

function openRows(s: Settings, onHeader: (header: readonly string[]) => void): AsyncGenerator<SourceRow> {
  // 64 KiB reads: csv-parse turns a whole chunk into records at once, so the chunk size bounds the read-ahead.
  const input = createReadStream(s.path, { highWaterMark: 1 << 16 })
  if (s.format === 'jsonl') {
    onHeader(['_json'])
    return readJsonlRows(input, { blank: s.blank, ignore: s.ignore })
  }
  return readCsvRows(input, { blank: s.blank, delimiter: s.delimiter, ignore: s.ignore, onHeader })
}

/**
 * The rejects file: `_line,_reason`, then the row as it was in the input (CSV cells, or the JSONL
 * line as `_json`), so it can be fixed and uploaded again with `--ignore-columns _line,_reason`.
 * Written synchronously, so it is on disk before the checkpoint moves past the row.
 */
class RejectsFile {
  readonly path: string
  readonly #delimiter: string
  #fd: number | undefined
  #header: readonly string[] = []
  bytes: number
  /** Entries kept from the previous run. */
  kept: number

  /**
   * Starts a fresh rejects file, or on resume keeps only the entries of rows before `keepBeforeLine`:
   * rows from there on are read again and rejected again if still bad, so nothing is listed twice.
   */
  constructor(path: string, delimiter: string, keepBeforeLine: number | null) {
    this.path = path
    this.#delimiter = delimiter
    this.bytes = 0
    this.kept = 0
    if (keepBeforeLine === null || !existsSync(path)) {
      rmSync(path, { force: true })
      return
    }
    const [header, ...entries] = parseCsv(readFileSync(path), { delimiter, relax_column_count: true }) as string[][]
    const keep = entries.filter((cells) => Number(cells[0]) < keepBeforeLine)
    if (header === undefined || keep.length === 0) {
      rmSync(path, { force: true })
      return
    }
    const tmp = `${path}.tmp`
    this.#fd = openSync(tmp, 'w')
    for (const cells of [header, ...keep]) this.#append(cells)
    renameSync(tmp, path)
    this.kept = keep.length
  }

  setHeader(header: readonly string[]): void {
    this.#header = header
  }

  write(line: number, reason: string, raw: readonly string[] | string): void {
    if (this.#fd === undefined) {
      this.#fd = openSync(this.path, 'w')
      this.#append(['_line', '_reason', ...this.#header])
    }
    this.#append([String(line), reason, ...(typeof raw === 'string' ? [raw] : raw)])
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
  }

  #append(cells: readonly string[]): void {
    const text = `${cells.map((c) => quoteCsv(c, this.#delimiter)).join(this.#delimiter)}\r\n`
    const buf = Buffer.from(text)
    writeSync(this.#fd as number, buf, 0, buf.length, this.bytes)
    this.bytes += buf.length
  }
}

function quoteCsv(cell: string, delimiter: string): string {
  return cell.includes('"') || cell.includes(delimiter) || /[\r\n]/.test(cell) || cell !== cell.trim()
    ? `"${cell.replaceAll('"', '""')}"`
    : cell
}

function readCheckpoint(s: Settings): Checkpoint | undefined {
  if (!existsSync(s.checkpointPath)) return undefined
  let cp: Checkpoint
  try {
    cp = JSON.parse(readFileSync(s.checkpointPath, 'utf8')) as Checkpoint
  } catch {
    throw new UsageError(`checkpoint ${s.checkpointPath} is unreadable; delete it to start over`)
  }
  if (cp.version !== 1 || typeof cp.rowsDone !== 'number' || typeof cp.lineDone !== 'number') {
    throw new UsageError(`checkpoint ${s.checkpointPath} is not one this version understands; delete it to start over`)
  }
  const stat = statSync(s.path)
  if (cp.file.size !== stat.size || cp.file.mtimeMs !== stat.mtimeMs) {
    throw new UsageError(
      `${s.path} changed since the checkpoint was written (size or modification time); ` +
        `resuming would skip the wrong rows. Delete ${s.checkpointPath} to upload it from the start`,
    )
  }
  for (const key of ['format', 'delimiter', 'blank'] as const) {
    if (cp[key] !== s[key]) {
      throw new UsageError(
        `the checkpoint was made with ${key} ${JSON.stringify(cp[key])}; resume with the same options`,
      )
    }
  }
  return cp
}

/**
 * Write-then-rename: a kill at any moment leaves either the old or the new checkpoint, never half
 * of one. While rows flow, writes go through the event loop (an fsync on a busy disk can take 100 ms,
 * which would stall the upload); the last one is synchronous.
 */
class CheckpointWriter {
  readonly #path: string
  readonly #tmp: string
  #writing: Promise<void> | undefined
  #next: Checkpoint | undefined
  failure: unknown

  constructor(path: string) {
    this.#path = path
    this.#tmp = `${path}.tmp`
  }

  /** Queues `cp`; at most one write runs at a time, and only the newest queued checkpoint is written next. */
  save(cp: Checkpoint): void {
    this.#next = cp
    if (this.#writing === undefined) this.#writing = this.#drain()
  }

  async #drain(): Promise<void> {
    for (let cp = this.#next; cp !== undefined; cp = this.#next) {
      this.#next = undefined
      try {
        const file = await open(this.#tmp, 'w')
        try {
          await file.writeFile(JSON.stringify(cp))
          await file.sync()
        } finally {
          await file.close()
        }
        await rename(this.#tmp, this.#path)
      } catch (error) {
        this.failure ??= error
      }
    }
    this.#writing = undefined
  }

  /** Waits for queued writes, then writes `cp` (or removes the checkpoint when `cp` is null). */
  async finish(cp: Checkpoint | null): Promise<void> {
    this.#next = undefined
    await this.#writing
    if (cp === null) {
      rmSync(this.#path, { force: true })
      return
    }
    const fd = openSync(this.#tmp, 'w')
    try {
      writeFileSync(fd, JSON.stringify(cp))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(this.#tmp, this.#path)
  }
}

async function upload(s: Settings, o: UploadCommandOptions, deps: UploadDeps): Promise<number> {
  const { out } = deps
  const url = o.url ?? deps.env.TRAITBASE_URL
  const key = o.key ?? deps.env.TRAITBASE_API_KEY
  if (url === undefined || url === '') throw new UsageError('--url is required (or set TRAITBASE_URL)')
  if (key === undefined || key === '') throw new UsageError('--key is required (or set TRAITBASE_API_KEY)')
  let client
  try {
    client = createClient({ baseUrl: url, apiKey: key, concurrency: s.concurrency, fetch: deps.fetch })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }

  const stat = statSync(s.path)
  let previous: Checkpoint | undefined
  if (o.resume === true) {
    previous = readCheckpoint(s)
    if (previous === undefined) out.err(`note: no checkpoint at ${s.checkpointPath}; starting from the first row`)
    else out.err(`resuming after row ${formatCount(previous.rowsDone)}`)
  } else if (existsSync(s.checkpointPath)) {
    out.err(`note: starting from the first row; pass --resume to continue from ${s.checkpointPath}`)
  }
  const startRow = previous?.rowsDone ?? 0
  const rejects = new RejectsFile(s.rejectsPath, s.format === 'csv' ? s.delimiter : ',', previous?.lineDone ?? null)
  // Every row before the checkpoint was stored or rejected, so the rejects kept give both counts.
  const earlier = { sent: startRow - rejects.kept, rejected: rejects.kept }

  /** Rows handed to the SDK and not yet behind the checkpoint: SDK index → where the row is in the file. */
  const inFlight = new Map<number, { fileRow: number; line: number; raw: readonly string[] | string }>()
  let pruneFrom = 0
  let fileRowsConsumed = startRow
  let yielded = 0
  let readerRejects = 0
  let bytes = 0
  let rowsDone = startRow
  let lineDone = previous?.lineDone ?? 0
  let lastLine = 0
  let sdk: UploadProgress = { read: 0, sent: 0, rejected: 0, failed: 0, requests: 0, retries: 0 }
  let lastCheckpointAt = 0
  const checkpoints = new CheckpointWriter(s.checkpointPath)

  const currentCheckpoint = (): Checkpoint => ({
    version: 1,
    file: { path: s.path, size: stat.size, mtimeMs: stat.mtimeMs },
    format: s.format,
    delimiter: s.delimiter,
    blank: s.blank,
    rowsDone,
    lineDone,
  })
  const checkpointNow = (): void => {
    checkpoints.save(currentCheckpoint())
    lastCheckpointAt = Date.now()
  }

  async function* records(): AsyncGenerator<Record<string, unknown>> {
    let fileRow = 0
    for await (const row of openRows(s, (header) => rejects.setHeader(header))) {
      bytes = row.bytes
      lastLine = row.line
      if (fileRow < startRow) {
        fileRow++
        continue
      }
      if (row.record === undefined) {
        rejects.write(row.line, row.error ?? 'unreadable row', row.raw)
        readerRejects++
        fileRowsConsumed = ++fileRow
        continue
      }
      inFlight.set(yielded++, { fileRow, line: row.line, raw: row.raw })
      fileRowsConsumed = ++fileRow
      yield row.record
    }
  }

  const onCheckpoint = (settled: number): void => {
    const next = settled < yielded ? inFlight.get(settled) : undefined
    rowsDone = next?.fileRow ?? fileRowsConsumed
    lineDone = next?.line ?? lastLine + 1
    for (; pruneFrom < settled; pruneFrom++) inFlight.delete(pruneFrom)
    if (Date.now() - lastCheckpointAt >= CHECKPOINT_EVERY_MS) checkpointNow()
  }
  const onReject = (report: RowReport): void => {
    const where = inFlight.get(report.index)
    rejects.write(where?.line ?? 0, report.reason, where?.raw ?? [])
  }

  const reporter = new ProgressReporter(deps.progress)
  const snapshot = () => ({
    done: startRow + readerRejects + sdk.sent + sdk.rejected + sdk.failed,
    read: startRow + readerRejects + sdk.read,
    bytes,
    totalBytes: stat.size,
    rejected: earlier.rejected + readerRejects + sdk.rejected,
    failed: sdk.failed,
    retries: sdk.retries,
  })
  const timer = setInterval(() => reporter.report(snapshot()), reporter.tty ? 200 : s.progressEveryMs)
  timer.unref()

  const started = Date.now()
  checkpointNow()
  const summary = await client.uploadProfiles(records(), {
    keepRowReports: false,
    keepRecords: false,
    signal: deps.signal,
    onCheckpoint,
    onReject,
    onProgress: (p) => {
      sdk = p
    },
  })
  sdk = summary
  clearInterval(timer)
  // An unreadable file (no user_id column, say) before any row: a usage error, nothing to resume.
  if (summary.aborted?.error instanceof InputFileError && summary.read === 0 && readerRejects === 0 && startRow === 0) {
    await checkpoints.finish(null)
    rejects.close()
    throw summary.aborted.error
  }
  reporter.report(snapshot())
  reporter.finish()
  rejects.close()

  const seconds = (Date.now() - started) / 1000
  const rejected = earlier.rejected + readerRejects + summary.rejected
  const sentTotal = earlier.sent + summary.sent
  const { requests, retries } = summary
  const complete = summary.aborted === null && summary.failed === 0
  const interrupted = summary.aborted !== null && deps.signal?.aborted === true
  await checkpoints.finish(complete ? null : currentCheckpoint())
  if (checkpoints.failure !== undefined) {
    out.err(
      `warning: could not save a checkpoint: ${(checkpoints.failure as Error).message ?? String(checkpoints.failure)}`,
    )
  }

  const rows = complete ? fileRowsConsumed : rowsDone
  const rate = seconds > 0 ? Math.round((summary.sent + summary.rejected + readerRejects) / seconds) : 0
  if (o.json === true) {
    out.out(
      JSON.stringify({
        file: s.path,
        complete,
        rows,
        sent: sentTotal,
        rejected,
        failed: summary.failed,
        requests,
        retries,
        seconds,
        rowsPerSecond: rate,
        resumedFrom: startRow,
        rejectsFile: rejected > 0 ? s.rejectsPath : null,
        checkpoint: complete ? null : s.checkpointPath,
        error: summary.aborted?.reason ?? null,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
      }),
    )
  } else {
    out.out(
      `${complete ? 'uploaded' : 'stopped'}: ${formatCount(sentTotal)} rows sent, ${formatCount(rejected)} rejected, ` +
        `${formatCount(summary.failed)} failed in ${formatDuration(seconds)} (${formatCount(rate)} rows/s); ` +
        `${formatCount(requests)} requests, ${formatCount(retries)} retries`,
    )
    if (rejected > 0) out.out(`rejected rows with line numbers and reasons: ${s.rejectsPath}`)
  }
  if (summary.aborted !== null) out.err(`error: ${summary.aborted.reason}`)
  if (!complete) {
    out.err(
      `${interrupted ? 'interrupted' : 'not finished'}: every row before row ${formatCount(rowsDone)} is done; ` +
        `run the same command with --resume to continue`,
    )
  }
  return complete && rejected === 0 ? EXIT_OK : EXIT_INCOMPLETE
}

async function dryRun(s: Settings, o: UploadCommandOptions, deps: UploadDeps): Promise<number> {
  const rejects = new RejectsFile(s.rejectsPath, s.format === 'csv' ? s.delimiter : ',', 0)
  const packer = new BatchPacker()
  let rows = 0
  let valid = 0
  let rejected = 0
  let requests = 0
  const take = (): void => {
    for (let b = packer.takeReady(); b !== undefined; b = packer.takeReady()) {
      requests++
      packer.complete(b)
    }
  }
  for await (const row of openRows(s, (header) => rejects.setHeader(header))) {
    const split = row.record === undefined ? undefined : splitRecord(row.record)
    if (split === undefined || !split.ok) {
      rejects.write(row.line, split?.reason ?? row.error ?? 'unreadable row', row.raw)
      rejected++
    } else {
      for (const chunk of split.chunks) packer.add(rows, chunk)
      valid++
      take()
    }
    rows++
  }
  packer.flush()
  take()
  rejects.close()
  if (o.json === true) {
    deps.out.out(
      JSON.stringify({
        file: s.path,
        dryRun: true,
        rows,
        valid,
        rejected,
        requests,
        rejectsFile: rejected > 0 ? s.rejectsPath : null,
      }),
    )
  } else {
    deps.out.out(
      `dry run: ${formatCount(rows)} rows, ${formatCount(valid)} valid, ${formatCount(rejected)} rejected; ` +
        `would send ${formatCount(requests)} requests`,
    )
    if (rejected > 0) deps.out.out(`rejected rows with line numbers and reasons: ${s.rejectsPath}`)
  }
  return rejected === 0 ? EXIT_OK : EXIT_INCOMPLETE
}

/**
 * A signal for `deps.signal` that the first Ctrl-C (or SIGTERM) aborts: the upload stops reading,
 * lets requests in flight finish and writes its checkpoint. A second Ctrl-C exits at once, which
 * is safe too: the checkpoint never covers a row that was not acknowledged.
 */
export function abortOnInterrupt(out: Output): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130)
    out.err(`\n${name}: finishing the requests in flight, then saving the checkpoint (again to quit now)`)
    controller.abort(new Error(`interrupted by ${name}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    },
  }
}
