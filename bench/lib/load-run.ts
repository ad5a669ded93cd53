import { randomUUID } from 'node:crypto'
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { generateLoadBody, USERS_PER_REQUEST } from './profile-generator.js'

export interface LoadConfig {
  /** Server origin, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string
  readonly apiKey: string
  readonly seconds: number
  /** Keep-alive connections, each with one request in flight. */
  readonly connections: number
  /** Users preloaded before the run: request k updates users below preload + 50·k. */
  readonly preload: number
  readonly seed: number
  /** Send a unique `Idempotency-Key` with every request (the SDK's behaviour). Default false. */
  readonly idempotencyKeys?: boolean
}

export interface LoadResult {
  readonly requests: number
  readonly users: number
  readonly errors: number
  /** Up to 5 distinct error descriptions. */
  readonly errorSamples: string[]
  readonly elapsedMs: number
  /** One sample per successful request. */
  readonly latenciesMs: number[]
  /** CPU the load generator itself used (user + system), seconds: shows it was not the bottleneck. */
  readonly cpuSeconds: number
}

/** A request that takes longer than this counts as an error instead of hanging the run. */
const REQUEST_TIMEOUT_MS = 60_000
const MAX_ERROR_SAMPLES = 5

/**
 * Drives `POST /v1/user/profiles` with `connections` concurrent loops for `seconds`; each loop
 * sends the next request of the shared sequence and waits for its answer. No request starts
 * after the deadline; the run ends when the last answer arrives.
 */
export async function runLoad(config: LoadConfig): Promise<LoadResult> {
  const url = new URL('/v1/user/profiles', config.baseUrl)
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.connections })
  const latenciesMs: number[] = []
  const errorSamples = new Set<string>()
  let next = 0
  let errors = 0
  const runId = randomUUID()
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  const deadline = start + config.seconds * 1000

  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const n = next++
      const body = JSON.stringify(generateLoadBody(n, config.preload, config.seed))
      const key = config.idempotencyKeys === true ? `"${runId}-${n}"` : undefined
      const t0 = performance.now()
      const problem = await post(url, agent, config.apiKey, body, key)
      if (problem === undefined) latenciesMs.push(performance.now() - t0)
      else {
        errors++
        if (errorSamples.size < MAX_ERROR_SAMPLES) errorSamples.add(problem)
      }
    }
  }
  await Promise.all(Array.from({ length: config.connections }, loop))
  const elapsedMs = performance.now() - start
  const cpu = process.cpuUsage(cpuStart)
  agent.destroy()
  return {
    requests: latenciesMs.length,
    users: latenciesMs.length * USERS_PER_REQUEST,
    errors,
    errorSamples: [...errorSamples],
    elapsedMs,
    latenciesMs,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  }
}

/** Resolves undefined on a 200, else a one-line description of what went wrong. Never rejects. */
function post(
  url: URL,
  agent: http.Agent,
  apiKey: string,
  body: string,
  idempotencyKey?: string,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          if (res.statusCode === 200) resolve(undefined)
          else resolve(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`)
        })
        res.on('error', (e) => resolve(`response: ${e.message}`))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', (e) => resolve(`request: ${e.message}`))
    req.end(body)
  })
}
