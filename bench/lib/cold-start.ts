import { spawn } from 'node:child_process'
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { summarizeLatencies, type LatencySummary } from './latency.js'
import { generateLoadBody } from './profile-generator.js'
import { startServer } from './server-process.js'

export interface ColdStartConfig {
  /** Server entry, e.g. `dist/server/main.js`. */
  readonly entry: string
  readonly databaseUrl: string
  readonly apiKey: string
  /** Users in the store (uploads create users after them). */
  readonly users: number
  readonly queryClients: number
  readonly uploadClients: number
  /** Give up waiting for the index after this long. */
  readonly timeoutMs: number
  /** How long the same load runs once the index answers: the baseline of the same run. */
  readonly readyPhaseMs: number
  readonly logFile: string
  readonly seed: number
  /** Extra server environment (e.g. SEGMENT_INDEX_MEMORY_MB). */
  readonly env?: Readonly<Record<string, string>>
}

export interface PhaseFigures {
  readonly queries: LatencySummary
  /** Answers by source. */
  readonly fromIndex: number
  readonly fromDatabase: number
  readonly uploads: LatencySummary
  readonly health: LatencySummary
  /** The same probe from a process of its own, as a load balancer sees it (the bench process is busy with 34 clients). */
  readonly healthOwnProcess: LatencySummary
  /** Longest event-loop delay in the server (prom-client's monitorEventLoopDelay), ms. */
  readonly maxLoopStallMs: number
  readonly errors: number
}

export interface ColdStartResult {
  /** From the first request after the restart to the first answer from the index; null on timeout. */
  readonly firstIndexAnswerMs: number | null
  readonly warmUp: PhaseFigures
  readonly ready: PhaseFigures
}

interface Sample {
  readonly at: number
  readonly ms: number
}

const QUERY = JSON.stringify({ where: { field: 'plan', op: 'eq', value: 'pro' }, limit: 100 })

/**
 * Restarts the real server on an existing store and, at once, starts `queryClients` clients
 * asking the same segment back to back, `uploadClients` clients uploading back to back, and a
 * /healthz probe every 100 ms (twice: in this process and in a process of its own). Reports the time until the first answer that came from the index
 * (`x-segment-source: index`), latencies while it warmed up and during `readyPhaseMs` after, and
 * the server's longest event-loop stall in each phase (read from /metrics, whose event-loop
 * figures come from `perf_hooks.monitorEventLoopDelay` and restart at every scrape).
 */
export async function runColdStart(config: ColdStartConfig): Promise<ColdStartResult> {
  const server = await startServer({
    entry: config.entry,
    env: { DATABASE_URL: config.databaseUrl, LOG_LEVEL: 'warn', ...config.env },
    logFile: config.logFile,
    readyTimeoutMs: 300_000,
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.queryClients + config.uploadClients + 4 })
  try {
    await loopStallMs(server.baseUrl, agent) // restarts the server's event-loop histogram
    const queries: (Sample & { source: string })[] = []
    const uploads: Sample[] = []
    const health: Sample[] = []
    let errors = 0
    let stop = false
    let firstIndexAt: number | null = null
    const start = performance.now()
    const queryLoop = async () => {
      while (!stop) {
        const t0 = performance.now()
        const r = await send(server.baseUrl, agent, 'POST', '/v1/user/segments/query', config.apiKey, QUERY)
        const now = performance.now()
        if (r.status !== 200) {
          errors++
          continue
        }
        queries.push({ at: t0, ms: now - t0, source: r.source })
        if (r.source === 'index' && firstIndexAt === null) firstIndexAt = now
      }
    }
    let k = 0
    const uploadLoop = async () => {
      while (!stop) {
        const body = JSON.stringify(generateLoadBody(k++, config.users, config.seed))
        const t0 = performance.now()
        const r = await send(server.baseUrl, agent, 'POST', '/v1/user/profiles', config.apiKey, body)
        if (r.status === 200) uploads.push({ at: t0, ms: performance.now() - t0 })
        else errors++
      }
    }
    const healthLoop = async () => {
      while (!stop) {
        const t0 = performance.now()
        const r = await send(server.baseUrl, agent, 'GET', '/healthz', undefined, undefined)
        if (r.status === 200) health.push({ at: t0, ms: performance.now() - t0 })
        else errors++
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    const probe = startHealthProbe(server.baseUrl)
    const loops = [
      ...Array.from({ length: config.queryClients }, queryLoop),
      ...Array.from({ length: config.uploadClients }, uploadLoop),
      healthLoop(),
    ]
    while (firstIndexAt === null && performance.now() - start < config.timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const readyAt = firstIndexAt ?? performance.now()
    const warmStall = await loopStallMs(server.baseUrl, agent)
    const warmErrors = errors
    await new Promise((resolve) => setTimeout(resolve, config.readyPhaseMs))
    const readyStall = await loopStallMs(server.baseUrl, agent)
    stop = true
    await Promise.all(loops)
    const ownProcess = await probe.stop()
    const phase = (from: number, to: number, stall: number, errorCount: number): PhaseFigures => {
      const inPhase = <T extends Sample>(xs: T[]) => xs.filter((x) => x.at >= from && x.at < to)
      const q = inPhase(queries)
      return {
        queries: summarizeLatencies(q.map((x) => x.ms)),
        fromIndex: q.filter((x) => x.source === 'index').length,
        fromDatabase: q.filter((x) => x.source === 'database').length,
        uploads: summarizeLatencies(inPhase(uploads).map((x) => x.ms)),
        health: summarizeLatencies(inPhase(health).map((x) => x.ms)),
        healthOwnProcess: summarizeLatencies(inPhase(ownProcess).map((x) => x.ms)),
        maxLoopStallMs: stall,
        errors: errorCount,
      }
    }
    return {
      firstIndexAnswerMs: firstIndexAt === null ? null : firstIndexAt - start,
      warmUp: phase(start, readyAt, warmStall, warmErrors),
      ready: phase(readyAt, Number.POSITIVE_INFINITY, readyStall, errors - warmErrors),
    }
  } finally {
    agent.destroy()
    await server.stop()
  }
}

// The probe process: GET /healthz every 100 ms on one keep-alive connection, one line per answer:
// "<start, ms since the epoch> <latency ms> <status>".
const PROBE_SCRIPT = `
const http = require('node:http')
const { performance } = require('node:perf_hooks')
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const url = new URL('/healthz', process.env.PROBE_BASE_URL)
const now = () => performance.timeOrigin + performance.now()
function once() {
  const t0 = now()
  const req = http.get(url, { agent, timeout: 120000 }, (res) => {
    res.resume()
    res.on('end', () => {
      process.stdout.write(t0 + ' ' + (now() - t0) + ' ' + res.statusCode + '\\n')
      setTimeout(once, 100)
    })
  })
  req.on('timeout', () => req.destroy(new Error('timeout')))
  req.on('error', () => setTimeout(once, 100))
}
once()
`

/** Starts the /healthz probe in a process of its own; `stop` ends it and returns its 200 answers (`at` on this process's clock). */
function startHealthProbe(baseUrl: string): { stop: () => Promise<Sample[]> } {
  const child = spawn(process.execPath, ['-e', PROBE_SCRIPT], {
    env: { ...process.env, PROBE_BASE_URL: baseUrl, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => (out += chunk))
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  return {
    async stop() {
      child.kill('SIGTERM')
      await exited
      const samples: Sample[] = []
      for (const line of out.split('\n')) {
        const [at, ms, status] = line.split(' ').map(Number)
        if (status === 200 && at !== undefined && ms !== undefined)
          samples.push({ at: at - performance.timeOrigin, ms })
      }
      return samples
    },
  }
}

/** The server's longest event-loop delay since the previous scrape, ms. */
async function loopStallMs(baseUrl: string, agent: http.Agent): Promise<number> {
  const r = await send(baseUrl, agent, 'GET', '/metrics', undefined, undefined)
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(r.body)
  return m ? Number(m[1]) * 1000 : Number.NaN
}

function send(
  baseUrl: string,
  agent: http.Agent,
  method: string,
  path: string,
  apiKey: string | undefined,
  body: string | undefined,
): Promise<{ status: number; source: string; body: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      new URL(path, baseUrl),
      {
        method,
        agent,
        timeout: 120_000,
        headers: {
          ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }),
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            source: String(res.headers['x-segment-source'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', () => resolve({ status: 0, source: '', body: '' }))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, source: '', body: '' }))
    req.end(body)
  })
}
