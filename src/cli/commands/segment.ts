import { accessSync, constants, createWriteStream, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { parseCondition } from '../../core/segment.js'
import { createClient, type SegmentWhere } from '../../sdk/index.js'
import type { Output } from '../output.js'

/** Exit codes: 0 done, 1 the server or network failed, 2 the command line is wrong. */
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

export interface SegmentDeps {
  readonly out: Output
  /** Where TRAITBASE_URL and TRAITBASE_API_KEY are read. */
  readonly env: Readonly<Record<string, string | undefined>>
  /** @default globalThis.fetch */
  readonly fetch?: typeof globalThis.fetch
  /** Where an export goes without `--output`. @default process.stdout */
  readonly stdout?: Writable
}

export interface SegmentCountOptions {
  readonly url?: string
  readonly key?: string
  readonly where: string
  readonly json?: boolean
}

export interface SegmentExportOptions {
  readonly url?: string
  readonly key?: string
  /** A condition as JSON; or `segment`. */
  readonly where?: string
  /** A saved segment id; or `where`. */
  readonly segment?: string
  /** Comma-separated attribute columns; default all (CSV) or the whole profile (NDJSON). */
  readonly fields?: string
  /** `csv` (default) or `ndjson`. */
  readonly format?: string
  /** File to write; default stdout. */
  readonly output?: string
}

class UsageError extends Error {}

function connection(o: { url?: string; key?: string }, env: SegmentDeps['env']): { url: string; key: string } {
  const url = o.url ?? env['TRAITBASE_URL']
  const key = o.key ?? env['TRAITBASE_API_KEY']
  if (url === undefined || url === '') throw new UsageError('--url is required (or set TRAITBASE_URL)')
  if (key === undefined || key === '') throw new UsageError('--key is required (or set TRAITBASE_API_KEY)')
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}`)
  }
  return { url: url.replace(/\/+$/, ''), key }
}

/** `--output` must be a file we can create; checked before anything is sent, so nothing half-written is left. */
function checkOutput(path: string | undefined): void {
  if (path === undefined) return
  if (path === '') throw new UsageError('--output must not be empty')
  let isDirectory = false
  try {
    isDirectory = statSync(path).isDirectory()
  } catch {
    // Does not exist yet: its folder must.
  }
  if (isDirectory) throw new UsageError(`--output ${path} is a folder; give a file path`)
  try {
    accessSync(dirname(resolve(path)), constants.W_OK)
  } catch {
    throw new UsageError(`--output ${path}: its folder does not exist or is not writable`)
  }
}

/** Parses and checks `--where` with the server's own parser, so mistakes are caught before sending. */
function readWhere(text: string): SegmentWhere {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`--where is not valid JSON: ${(error as Error).message}`)
  }
  const parsed = parseCondition(json)
  if (!parsed.ok) {
    const first = parsed.error[0]
    throw new UsageError(`--where ${first === undefined ? 'is invalid' : `${first.path}: ${first.message}`}`)
  }
  return json as SegmentWhere
}

async function guard(out: Output, action: () => Promise<void>): Promise<number> {
  try {
    await action()
    return EXIT_OK
  } catch (error) {
    out.err(`error: ${error instanceof Error ? error.message : String(error)}`)
    return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILED
  }
}

/** `traitbase segment count --where JSON`: prints the number of matching users. Returns the exit code. */
export function countSegment(options: SegmentCountOptions, deps: SegmentDeps): Promise<number> {
  return guard(deps.out, async () => {
    const where = readWhere(options.where)
    const { url, key } = connection(options, deps.env)
    const client = createClient({ baseUrl: url, apiKey: key, ...(deps.fetch ? { fetch: deps.fetch } : {}) })
    for await (const page of client.querySegment(where, { limit: 1 })) {
      deps.out.out(options.json === true ? JSON.stringify({ count: page.count }) : String(page.count))
      return
    }
  })
}

/**
 * `traitbase segment export (--where JSON | --segment ID)`: streams every member as CSV or NDJSON
 * to `--output` or stdout, as the server sends it (memory stays flat).
 */
export function exportSegment(options: SegmentExportOptions, deps: SegmentDeps): Promise<number> {
  return guard(deps.out, async () => {
    const format = options.format ?? 'csv'
    if (format !== 'csv' && format !== 'ndjson') throw new UsageError('--format must be csv or ndjson')
    if ((options.where === undefined) === (options.segment === undefined)) {
      throw new UsageError('give exactly one of --where JSON or --segment ID')
    }
    const where = options.where === undefined ? undefined : readWhere(options.where)
    if (options.fields !== undefined && options.fields.split(',').every((f) => f.trim() === '')) {
      throw new UsageError('--fields needs at least one attribute name (leave it out for every column)')
    }
    checkOutput(options.output)
    const { url, key } = connection(options, deps.env)
    const query = options.fields === undefined ? '' : `?fields=${encodeURIComponent(options.fields)}`
    const path =
      where === undefined
        ? `/v1/user/segments/${encodeURIComponent(options.segment as string)}/export${query}`
        : `/v1/user/segments/export${query}`
    const fetchFn = deps.fetch ?? globalThis.fetch
    const response = await fetchFn(url + path, {
      method: where === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        accept: format === 'csv' ? 'text/csv' : 'application/x-ndjson',
        ...(where === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(where === undefined ? {} : { body: JSON.stringify({ where }) }),
    })
    if (!response.ok || response.body === null) {
      let msg = response.statusText
      try {
        msg = ((await response.json()) as { msg?: string }).msg ?? msg
      } catch {
        // Not our envelope (a proxy's page): the status line says enough.
      }
      throw new Error(`${where === undefined ? 'GET' : 'POST'} ${path.split('?')[0]}: ${response.status} ${msg}`)
    }
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>)
    const target = options.output === undefined ? (deps.stdout ?? process.stdout) : createWriteStream(options.output)
    await pipeline(body, target, { end: options.output !== undefined })
  })
}
