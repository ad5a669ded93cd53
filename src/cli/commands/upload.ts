import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { BatchPacker, createClient, splitRecord, TraitbaseApiError } from '../../sdk/index.js'
import type { RowReport, UploadProgress } from '../../sdk/index.js'
import type { Output } from '../output.js'
import { formatCount, formatDuration, ProgressReporter, type ProgressStream } from '../progress.js'
import { readCsvRows } from '../readers/csv.js'
import { InputFileError, oneLine } from '../readers/input-error.js'
import { readJsonlRows } from '../readers/jsonl.js'
import type { BlankPolicy, SourceRow } from '../readers/source-row.js'
import {
  CheckpointWriter,
  checkOutputPaths,
  checkpointSiblings,
  checkRejectsExtension,
  defaultRejectsPath,
  openRejects,
  parseCheckpoint,
  UsageError,
  type Checkpoint,
  type Format,
} from './upload-files.js'

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

interface Settings {
  /** FILE as the user wrote it, for messages. */
  readonly file: string
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

/**
 * Checkpoints are written at most this often while rows flow (each is an fsync), and at most this
 * long after a request is acknowledged; so a `kill -9` re-sends at most the requests acknowledged in
 * the last 0.5 s. Every other way out writes the latest position synchronously.
 */
export const CHECKPOINT_EVERY_MS = 500

/** 401, 403, 404: the key or the URL is wrong; sending the same rows again cannot help until it is fixed. */
const REFUSED = new Set([401, 403, 404])

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
    out.err(`error: ${oneLine((error as Error).message)}`)
    return EXIT_USAGE
  }
  try {
    return options.dryRun === true ? await dryRun(settings, options, deps) : await upload(settings, options, deps)
  } catch (error) {
    if (error instanceof InputFileError) {
      out.err(`error: ${error.describe(settings.file)}`)
      return EXIT_USAGE
    }
    if (error instanceof UsageError) {
      out.err(`error: ${oneLine(error.message)}`)
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
  if (o.rejects !== undefined) checkRejectsExtension(o.rejects, format)
  const rejectsPath = resolve(o.rejects ?? defaultRejectsPath(file, format))
  const checkpointPath = resolve(o.checkpoint ?? `${file}.checkpoint.json`)
  checkOutputPaths(path, [
    { option: '--rejects', path: rejectsPath, explicit: o.rejects !== undefined, siblings: [`${rejectsPath}.tmp`] },
    ...(o.dryRun === true
      ? []
      : [
          {
            option: '--checkpoint',
            path: checkpointPath,
            explicit: o.checkpoint !== undefined,
            siblings: checkpointSiblings(checkpointPath),
          },
        ]),
  ])
  return {
    file,
    path,
    format,
    delimiter,
    blank,
    ignore,
    rejectsPath,
    checkpointPath,
    concurrency,
    progressEveryMs: progressEvery * 1000,
  }
}

function openRows(s: Settings, onHeader: (header: readonly string[]) => void): AsyncGenerator<SourceRow> {
  // 64 KiB reads: each is parsed when its rows are wanted, so the chunk size bounds the read-ahead.
  const input = createReadStream(s.path, { highWaterMark: 1 << 16 })
  if (s.format === 'jsonl') return readJsonlRows(input, { blank: s.blank, ignore: s.ignore })
  return readCsvRows(input, { blank: s.blank, delimiter: s.delimiter, ignore: s.ignore, onHeader })
}

function readCheckpoint(s: Settings): Checkpoint | undefined {
  if (!existsSync(s.checkpointPath)) return undefined
  let text: string
  try {
    text = readFileSync(s.checkpointPath, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read the checkpoint ${s.checkpointPath}: ${(error as Error).message}`)
  }
  const cp = parseCheckpoint(text)
  if (typeof cp === 'string') {
    throw new UsageError(
      `the checkpoint ${s.checkpointPath} is damaged (${cp}); delete it, or run without --resume to start from the first row`,
    )
  }
  const stat = statSync(s.path)
  if (cp.file.size !== stat.size || cp.file.mtimeMs !== stat.mtimeMs) {
    throw new UsageError(
      `${s.file} changed since the checkpoint was written (size or modification time); ` +
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
  const rejects = await openRejects(s.rejectsPath, s.format, previous?.lineDone ?? null)
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
  let inputEnded = false
  let inputError: unknown
  let sdk: UploadProgress = { read: 0, sent: 0, rejected: 0, failed: 0, requests: 0, retries: 0 }
  // Rows that failed inside a request. The SDK also counts as failed the rows it never sent after
  // stopping (Ctrl-C, a 401); those are `summary.failed - failedInRequests`.
  let failedInRequests = 0
  let lastCheckpointAt = 0
  let checkpointTimer: NodeJS.Timeout | undefined
  let settled = false
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
    clearTimeout(checkpointTimer)
    checkpointTimer = undefined
    checkpoints.save(currentCheckpoint())
    lastCheckpointAt = Date.now()
  }
  // Throttled, with a trailing write: the newest position is on disk at most CHECKPOINT_EVERY_MS after it moved.
  const checkpointSoon = (): void => {
    const wait = lastCheckpointAt + CHECKPOINT_EVERY_MS - Date.now()
    if (wait <= 0) checkpointNow()
    else checkpointTimer ??= setTimeout(checkpointNow, wait)
  }
  // Any way out before the end (a second Ctrl-C, a crash) writes the newest position first.
  const onExit = (): void => {
    if (settled) return
    settled = true
    try {
      checkpoints.saveNow(currentCheckpoint())
      out.err(
        `saved the checkpoint: every row before row ${formatCount(rowsDone)} is done; ` +
          'run the same command with --resume to continue',
      )
    } catch (error) {
      out.err(`warning: could not save the checkpoint: ${(error as Error).message}`)
    }
  }
  process.on('exit', onExit)

  async function* records(): AsyncGenerator<Record<string, unknown>> {
    let fileRow = 0
    try {
      for await (const row of openRows(s, (header) => rejects.setHeader(header))) {
        lastLine = row.line
        if (fileRow < startRow) {
          fileRow++
          continue
        }
        bytes = row.bytes
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
      inputEnded = true
    } catch (error) {
      // Ends the input here: the rows already read are still sent, and counted, before the error is shown.
      inputError = error
    }
  }

  const onCheckpoint = (settledRows: number): void => {
    const next = settledRows < yielded ? inFlight.get(settledRows) : undefined
    rowsDone = next?.fileRow ?? fileRowsConsumed
    lineDone = next?.line ?? lastLine + 1
    for (; pruneFrom < settledRows; pruneFrom++) inFlight.delete(pruneFrom)
    checkpointSoon()
  }
  const onReject = (report: RowReport): void => {
    const where = inFlight.get(report.index)
    rejects.write(where?.line ?? 0, report.reason, where?.raw ?? [])
  }

  const reporter = new ProgressReporter(deps.progress)
  const snapshot = () => ({
    done: startRow + readerRejects + sdk.sent + sdk.rejected + failedInRequests,
    read: fileRowsConsumed,
    bytes,
    totalBytes: stat.size,
    inputDone: inputEnded,
    rejected: earlier.rejected + readerRejects + sdk.rejected,
    failed: failedInRequests,
    retries: sdk.retries,
  })
  const timer = setInterval(() => reporter.report(snapshot()), reporter.tty ? 200 : s.progressEveryMs)
  timer.unref()

  try {
    const started = Date.now()
    checkpointNow()
    const summary = await client.uploadProfiles(records(), {
      keepRowReports: false,
      keepRecords: false,
      signal: deps.signal,
      onCheckpoint,
      onReject,
      onProgress: (p) => {
        // A request settled (the SDK's last report, after it stops, counts no request).
        if (p.requests !== sdk.requests) failedInRequests = p.failed
        sdk = p
      },
    })
    sdk = summary
    clearInterval(timer)
    clearTimeout(checkpointTimer)
    rejects.close()
    const inputFailure = inputError instanceof InputFileError ? inputError : undefined
    // An unreadable file (no user_id column, say) before any row: a usage error, nothing to resume.
    if (inputFailure !== undefined && fileRowsConsumed === 0 && summary.read === 0) {
      settled = true
      reporter.finish()
      await checkpoints.finish(null)
      throw inputFailure
    }
    reporter.report(snapshot())
    reporter.finish()

    const seconds = (Date.now() - started) / 1000
    const rejected = earlier.rejected + readerRejects + summary.rejected
    const sentTotal = earlier.sent + summary.sent
    const failed = Math.min(failedInRequests, summary.failed)
    const notSent = summary.failed - failed
    const { requests, retries } = summary
    const complete = inputEnded && summary.aborted === null && summary.failed === 0
    const interrupted = !complete && deps.signal?.aborted === true
    const apiError = summary.aborted?.error instanceof TraitbaseApiError ? summary.aborted.error : undefined
    const refused = apiError?.status != null && REFUSED.has(apiError.status)
    // Resuming helps when the rows behind the checkpoint need not be sent again: after an
    // interruption, a network or server failure. Not after a broken file (it must change first), nor
    // after a refused key or URL when nothing was done yet.
    const resumable = !complete && inputFailure === undefined && !(refused && rowsDone === 0)
    settled = true
    await checkpoints.finish(resumable ? currentCheckpoint() : null)
    if (checkpoints.failure !== undefined) {
      out.err(`warning: could not save a checkpoint: ${(checkpoints.failure as Error).message}`)
    }

    const rows = complete ? fileRowsConsumed : rowsDone
    const rate = seconds > 0 ? Math.round((summary.sent + summary.rejected + readerRejects) / seconds) : 0
    const errorText = inputFailure
      ? inputFailure.describe(s.file)
      : inputError !== undefined
        ? `reading ${s.file} failed: ${(inputError as Error).message ?? String(inputError)}`
        : interrupted
          ? null
          : (summary.aborted?.reason ?? null)
    if (o.json === true) {
      out.out(
        JSON.stringify({
          file: s.path,
          complete,
          interrupted,
          rows,
          sent: sentTotal,
          rejected,
          failed,
          notSent,
          requests,
          retries,
          seconds,
          rowsPerSecond: rate,
          resumedFrom: startRow,
          rejectsFile: rejected > 0 ? s.rejectsPath : null,
          checkpoint: resumable ? s.checkpointPath : null,
          error: errorText === null ? null : oneLine(errorText),
          peakRssBytes: process.resourceUsage().maxRSS * 1024,
        }),
      )
    } else {
      const unsent = notSent > 0 ? `, ${formatCount(notSent)} not sent${interrupted ? ' (interrupted)' : ''}` : ''
      out.out(
        `${complete ? 'uploaded' : 'stopped'}: ${formatCount(sentTotal)} rows sent, ${formatCount(rejected)} rejected, ` +
          `${formatCount(failed)} failed${unsent} in ${formatDuration(seconds)} (${formatCount(rate)} rows/s); ` +
          `${formatCount(requests)} requests, ${formatCount(retries)} retries`,
      )
      if (rejected > 0) out.out(`rejected rows with line numbers and reasons: ${s.rejectsPath}`)
    }
    // Scattered blank cells under --blank=skip defeat batching (no two rows share a field set).
    const rowsPerRequest = requests > 0 ? summary.sent / requests : 100
    if (s.blank === 'skip' && requests >= 100 && rowsPerRequest < 10) {
      out.err(
        `note: ${rowsPerRequest.toFixed(1)} rows per request: blank cells in different columns keep rows from ` +
          'sharing requests under --blank=skip; if blanks mean "no value", --blank=clear packs 100 rows per request',
      )
    }
    if (errorText !== null) out.err(`error: ${oneLine(errorText)}`)
    if (refused) out.err(refusalHint(apiError?.status ?? 0))
    if (resumable) {
      const where = `every row before row ${formatCount(rowsDone)} is done`
      out.err(
        refused
          ? `${where}; once that is fixed, run the same command with --resume to skip them`
          : `${interrupted ? 'interrupted' : 'not finished'}: ${where}; run the same command with --resume to continue`,
      )
    }
    if (inputFailure !== undefined) return EXIT_USAGE
    return complete && rejected === 0 ? EXIT_OK : EXIT_INCOMPLETE
  } finally {
    clearInterval(timer)
    clearTimeout(checkpointTimer)
    process.off('exit', onExit)
    // A throw from in here (not expected) still leaves the newest position on disk.
    if (!settled) onExit()
  }
}

function refusalHint(status: number): string {
  if (status === 401) return 'check the API key (--key or TRAITBASE_API_KEY)'
  if (status === 403) return 'the API key needs the profiles:write scope'
  return 'check --url (or TRAITBASE_URL): the server there has no POST /v1/user/profiles'
}

async function dryRun(s: Settings, o: UploadCommandOptions, deps: UploadDeps): Promise<number> {
  const rejects = await openRejects(s.rejectsPath, s.format, null)
  const packer = new BatchPacker()
  let rows = 0
  let valid = 0
  let rejected = 0
  let requests = 0
  let inputError: unknown
  const take = (): void => {
    for (let b = packer.takeReady(); b !== undefined; b = packer.takeReady()) {
      requests++
      packer.complete(b)
    }
  }
  try {
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
  } catch (error) {
    inputError = error
  } finally {
    rejects.close()
  }
  packer.flush()
  take()
  if (inputError !== undefined && !(inputError instanceof InputFileError)) {
    throw new UsageError(`reading ${s.file} failed: ${(inputError as Error).message ?? String(inputError)}`)
  }
  if (inputError !== undefined && rows === 0) throw inputError
  if (o.json === true) {
    deps.out.out(
      JSON.stringify({
        file: s.path,
        dryRun: true,
        complete: inputError === undefined,
        rows,
        valid,
        rejected,
        requests,
        rejectsFile: rejected > 0 ? s.rejectsPath : null,
        error: inputError instanceof InputFileError ? inputError.describe(s.file) : null,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
      }),
    )
  } else {
    deps.out.out(
      `dry run${inputError === undefined ? '' : ' (stopped)'}: ${formatCount(rows)} rows, ${formatCount(valid)} valid, ` +
        `${formatCount(rejected)} rejected; would send ${formatCount(requests)} requests`,
    )
    if (rejected > 0) deps.out.out(`rejected rows with line numbers and reasons: ${s.rejectsPath}`)
  }
  if (inputError !== undefined) throw inputError
  return rejected === 0 ? EXIT_OK : EXIT_INCOMPLETE
}

/**
 * A signal for `deps.signal` that the first Ctrl-C (or SIGTERM) aborts: the upload stops reading,
 * lets requests in flight finish and writes its checkpoint. A second one exits at once with 130;
 * the upload's exit hook writes the newest checkpoint synchronously on the way out.
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
