/**
 * The files `traitbase upload` writes besides sending rows: the rejects file and the checkpoint,
 * and the checks that keep them from ever touching the input.
 */
import {
  accessSync,
  closeSync,
  constants,
  createReadStream,
  existsSync,
  fsyncSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { parse as parseCsv } from 'csv-parse'
import { oneLine } from '../readers/input-error.js'
import type { BlankPolicy } from '../readers/source-row.js'

/** Bad usage: printed as one `error:` line, exit code 2, nothing sent. */
export class UsageError extends Error {}

export type Format = 'csv' | 'jsonl'

// ---------------------------------------------------------------------------------------------
// Output paths

export interface OutputPath {
  /** How the user set it, for messages: `--rejects` or `--checkpoint`. */
  readonly option: string
  readonly path: string
  /** True when the user passed the option; false for the default next to the input. */
  readonly explicit: boolean
  /** Temporary files written next to it (then renamed over it). */
  readonly siblings: readonly string[]
}

/**
 * Refuses, before anything is read or sent, an output that is the input (by path, through links,
 * or as a hard link), is another output, is a folder, or sits in a folder that is missing or
 * read-only. Each of those used to show up mid-upload, or deleted the input.
 */
export function checkOutputPaths(input: string, outputs: readonly OutputPath[]): void {
  const inputStat = statSync(input)
  const inputReal = realpathSync(input)
  const claimed = new Map<string, OutputPath>()
  for (const output of outputs) {
    const name = output.explicit
      ? `${output.option} ${output.path}`
      : `the ${output.option.slice(2)} file ${output.path} (set ${output.option} PATH to put it elsewhere)`
    const dir = dirname(output.path)
    let dirReal: string
    try {
      dirReal = realpathSync(dir)
    } catch {
      throw new UsageError(`${name}: the folder ${dir} does not exist`)
    }
    if (!statSync(dirReal).isDirectory()) throw new UsageError(`${name}: ${dir} is not a folder`)
    try {
      accessSync(dirReal, constants.W_OK)
    } catch {
      throw new UsageError(`${name}: cannot write in the folder ${dir}`)
    }
    for (const path of [output.path, ...output.siblings]) {
      const real = join(dirReal, basename(path))
      let stat
      try {
        stat = statSync(real)
      } catch {
        stat = undefined
      }
      if (real === inputReal || (stat !== undefined && stat.ino === inputStat.ino && stat.dev === inputStat.dev)) {
        throw new UsageError(`${name} is the input file itself: it would be overwritten; choose another path`)
      }
      if (path === output.path && stat?.isDirectory() === true) throw new UsageError(`${name} is a folder`)
      if (path === output.path && stat !== undefined) {
        try {
          accessSync(real, constants.W_OK)
        } catch {
          throw new UsageError(`${name} cannot be written (permissions)`)
        }
      }
      const other = claimed.get(real)
      if (other !== undefined && other !== output) {
        throw new UsageError(
          `${other.option} and ${output.option} are the same file (${path}); give them different paths`,
        )
      }
      claimed.set(real, output)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

/** What `--resume` continues from. Only ever covers a prefix of rows that all landed or were rejected. */
export interface Checkpoint {
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

/** The checkpoint in `text`, or why it is not one (a hand edit, a truncated copy, another tool's file). */
export function parseCheckpoint(text: string): Checkpoint | string {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  if (!isObject(value)) return 'not a JSON object'
  if (value.version !== 1) return `"version" is ${JSON.stringify(value.version) ?? 'missing'}, not 1`
  const file = value.file
  if (!isObject(file) || typeof file.path !== 'string' || !isCount(file.size) || !Number.isFinite(file.mtimeMs)) {
    return '"file" must be {"path", "size", "mtimeMs"}'
  }
  if (value.format !== 'csv' && value.format !== 'jsonl') return '"format" must be "csv" or "jsonl"'
  if (typeof value.delimiter !== 'string') return '"delimiter" must be a string'
  if (value.blank !== 'clear' && value.blank !== 'skip') return '"blank" must be "clear" or "skip"'
  if (!isCount(value.rowsDone)) return '"rowsDone" must be a whole number'
  if (!isCount(value.lineDone)) return '"lineDone" must be a whole number'
  return value as unknown as Checkpoint
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

/** The temporary files a checkpoint at `path` is written through. */
export function checkpointSiblings(path: string): string[] {
  return [`${path}.tmp`, `${path}.exit.tmp`]
}

/**
 * Write-then-rename: a kill at any moment leaves either the old or the new checkpoint, never half of
 * one. While rows flow, writes go through the event loop (an fsync on a busy disk can take 100 ms,
 * which would stall the upload); the last one, and the one on the way out, are synchronous.
 */
export class CheckpointWriter {
  readonly #path: string
  readonly #tmp: string
  readonly #exitTmp: string
  #writing: Promise<void> | undefined
  #next: Checkpoint | undefined
  failure: unknown

  constructor(path: string) {
    this.#path = path
    ;[this.#tmp, this.#exitTmp] = checkpointSiblings(path) as [string, string]
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

  /**
   * Writes `cp` at once, synchronously: for the way out (a second Ctrl-C, a crash), when the process
   * ends before any promise settles. It goes through its own temporary file, since a queued write
   * may be half done in the other.
   */
  saveNow(cp: Checkpoint): void {
    writeAtomically(this.#exitTmp, this.#path, JSON.stringify(cp))
  }

  /** Waits for queued writes, then writes `cp` (or removes the checkpoint when `cp` is null). */
  async finish(cp: Checkpoint | null): Promise<void> {
    this.#next = undefined
    await this.#writing
    if (cp === null) rmSync(this.#path, { force: true })
    else writeAtomically(this.#tmp, this.#path, JSON.stringify(cp))
  }
}

function writeAtomically(tmp: string, path: string, text: string): void {
  const fd = openSync(tmp, 'w')
  try {
    writeFileSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

// ---------------------------------------------------------------------------------------------
// Rejects file

/**
 * Rejected rows with their line and reason, in a file that can be fixed and uploaded again with
 * `--ignore-columns _line,_reason`. Written synchronously, so a row is in it before the checkpoint
 * moves past it.
 */
export interface RejectsFile {
  readonly path: string
  /** Entries kept from the previous run (on --resume). */
  readonly kept: number
  setHeader(header: readonly string[]): void
  /** `raw`: the CSV cells, or the JSONL line. */
  write(line: number, reason: string, raw: readonly string[] | string): void
  close(): void
}

/** The default rejects file of `file`: CSV for CSV input (whatever its delimiter), JSON Lines for JSONL. */
export function defaultRejectsPath(file: string, format: Format): string {
  return format === 'csv' ? `${file}.rejects.csv` : `${file}.rejects.jsonl`
}

/** Refuses a rejects path whose extension would make `traitbase upload` read it in the other format. */
export function checkRejectsExtension(path: string, format: Format): void {
  const ext = extname(path).toLowerCase()
  if (format === 'jsonl' && (ext === '.csv' || ext === '.tsv')) {
    throw new UsageError(`--rejects ${path}: rejects of a JSON Lines file are JSON Lines; name it .jsonl or .ndjson`)
  }
  if (format === 'csv' && (ext === '.jsonl' || ext === '.ndjson')) {
    throw new UsageError(`--rejects ${path}: rejects of a CSV file are CSV; name it .csv (or .tsv for tabs)`)
  }
}

/**
 * Starts a fresh rejects file, or on resume keeps only the entries of rows before `keepBeforeLine`:
 * rows from there on are read again and rejected again if still bad, so nothing is listed twice.
 * The previous file is streamed, never held in memory.
 */
export async function openRejects(path: string, format: Format, keepBeforeLine: number | null): Promise<RejectsFile> {
  const file = format === 'csv' ? new CsvRejects(path) : new JsonlRejects(path)
  if (keepBeforeLine === null || !existsSync(path)) {
    rmSync(path, { force: true })
    return file
  }
  try {
    await file.keepFrom(path, keepBeforeLine)
  } catch (error) {
    file.abandon()
    throw new UsageError(
      `cannot read the rejects file ${path} of the previous run (${oneLine((error as Error).message)}); ` +
        'delete it and the checkpoint to start over',
    )
  }
  return file
}

abstract class RejectsBase implements RejectsFile {
  readonly path: string
  protected fd: number | undefined
  #bytes = 0
  kept = 0

  constructor(path: string) {
    this.path = path
  }

  abstract setHeader(header: readonly string[]): void
  abstract write(line: number, reason: string, raw: readonly string[] | string): void
  protected abstract entries(from: string, keepBeforeLine: number): AsyncIterable<string>

  /** Rewrites the file with the entries before `keepBeforeLine` (and a header), then appends after them. */
  async keepFrom(previous: string, keepBeforeLine: number): Promise<void> {
    const tmp = `${this.path}.tmp`
    this.fd = openSync(tmp, 'w')
    for await (const text of this.entries(previous, keepBeforeLine)) this.append(text)
    if (this.kept === 0) {
      this.abandon()
      rmSync(previous, { force: true })
      return
    }
    renameSync(tmp, this.path)
  }

  abandon(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    this.#bytes = 0
    rmSync(`${this.path}.tmp`, { force: true })
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }

  protected append(text: string): void {
    this.fd ??= openSync(this.path, 'w')
    const buf = Buffer.from(text)
    writeSync(this.fd, buf, 0, buf.length, this.#bytes)
    this.#bytes += buf.length
  }
}

/** `_line,_reason`, then the row's cells under the input's header; comma-separated unless the path ends in .tsv. */
class CsvRejects extends RejectsBase {
  readonly #delimiter: string
  #header: readonly string[] = []
  #headerWritten = false

  constructor(path: string) {
    super(path)
    this.#delimiter = extname(path).toLowerCase() === '.tsv' ? '\t' : ','
  }

  setHeader(header: readonly string[]): void {
    this.#header = header
  }

  write(line: number, reason: string, raw: readonly string[] | string): void {
    if (!this.#headerWritten) {
      this.#headerWritten = true
      if (this.kept === 0) this.append(this.#row(['_line', '_reason', ...this.#header]))
    }
    this.append(this.#row([String(line), oneLine(reason), ...(typeof raw === 'string' ? [raw] : raw)]))
  }

  protected async *entries(from: string, keepBeforeLine: number): AsyncIterable<string> {
    const parser = createReadStream(from).pipe(
      parseCsv({
        bom: true,
        delimiter: this.#delimiter,
        record_delimiter: ['\r\n', '\n', '\r'],
        relax_column_count: true,
        relax_quotes: true,
      }),
    )
    let header = true
    for await (const cells of parser as AsyncIterable<string[]>) {
      if (header) {
        header = false
        yield this.#row(cells)
      } else if (Number(cells[0]) < keepBeforeLine) {
        this.kept++
        yield this.#row(cells)
      }
    }
  }

  #row(cells: readonly string[]): string {
    return `${cells.map((c) => quoteCsv(c, this.#delimiter)).join(this.#delimiter)}\r\n`
  }
}

function quoteCsv(cell: string, delimiter: string): string {
  return cell.includes('"') || cell.includes(delimiter) || /[\r\n]/.test(cell) || cell !== cell.trim()
    ? `"${cell.replaceAll('"', '""')}"`
    : cell
}

/**
 * JSON Lines: the rejected line's own object with `"_line"` and `"_reason"` first, its members copied
 * as text (so `1.50` or a 20-digit number stay exactly as written). A line that is not a JSON object
 * becomes `{"_line", "_reason", "_text": the line}`.
 */
class JsonlRejects extends RejectsBase {
  setHeader(): void {}

  write(line: number, reason: string, raw: readonly string[] | string): void {
    const text = typeof raw === 'string' ? raw : raw.join(',')
    const head = `{"_line":${line},"_reason":${JSON.stringify(oneLine(reason))}`
    let members: string[] | undefined
    if (text.trimStart().startsWith('{')) {
      try {
        const parsed: unknown = JSON.parse(text)
        if (isObject(parsed)) {
          members = topLevelMembers(text)
            .filter((m) => m.key !== '_line' && m.key !== '_reason')
            .map((m) => m.text)
        }
      } catch {
        members = undefined
      }
    }
    const body = members === undefined ? [`"_text":${JSON.stringify(text)}`] : members
    this.append(`${head}${body.map((m) => `,${m}`).join('')}}\n`)
  }

  protected async *entries(from: string, keepBeforeLine: number): AsyncIterable<string> {
    const lines = createInterface({ input: createReadStream(from), crlfDelay: Infinity })
    for await (const text of lines) {
      const line = /^\{"_line":(\d+),/.exec(text)?.[1]
      if (line !== undefined && Number(line) < keepBeforeLine) {
        this.kept++
        yield `${text}\n`
      }
    }
  }
}

/** The members of a JSON object's text, each as written (`"key":value`), with its key. Assumes valid JSON. */
export function topLevelMembers(text: string): { key: string; text: string }[] {
  const members: { key: string; text: string }[] = []
  let depth = 0
  let start = text.indexOf('{') + 1
  let key: string | undefined
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      let j = i + 1
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1
      if (depth === 0 && key === undefined) key = JSON.parse(text.slice(i, j + 1)) as string
      i = j
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth === 0) {
        if (key !== undefined) members.push({ key, text: text.slice(start, i).trim() })
        break
      }
      depth--
    } else if (c === 0x2c /* , */ && depth === 0) {
      if (key !== undefined) members.push({ key, text: text.slice(start, i).trim() })
      start = i + 1
      key = undefined
    }
  }
  return members
}
