import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { runLoad, type LoadConfig, type LoadResult } from './load-run.js'

/**
 * The read-your-writes probe under load: `connections` clients upload at full speed,
 * spread over every server; meanwhile a prober, again and again, uploads one new marker user
 * through one server and, as soon as that upload is acknowledged, asks another server for the
 * number of marker users. Every answer must count every acknowledged marker (the reader's index
 * caught up with the feed), and must come: a query that waits for a feed it cannot catch up with
 * shows as a slow or failed probe.
 */
export interface ProbeConfig {
  /** Server origins; probe k uploads through servers[k % n] and queries servers[(k + 1) % n]. */
  readonly servers: readonly string[]
  readonly apiKey: string
  /** Upload clients in total, spread round-robin over the servers. */
  readonly connections: number
  /** How long the background load runs; probes run until then (at least `minProbes`). */
  readonly seconds: number
  readonly minProbes?: number
  /** Users already in the project: the background load updates and adds above them. */
  readonly preload: number
  readonly seed: number
  /** A probe query unanswered after this counts as failed (the issue saw 30 s timeouts). */
  readonly probeTimeoutMs?: number
  /** Runs one server's share of the load; default in this process (benchmarks fork it out). */
  readonly runLoad?: (config: LoadConfig) => Promise<LoadResult>
}

export interface ProbeOutcome {
  /** Latency of each probe's segment query, ms (answered probes only). */
  readonly queryMs: number[]
  /** Probes whose query answered with a wrong count, or not at all, described. */
  readonly failures: string[]
  readonly probes: number
  readonly load: LoadResult[]
}

export async function runFeedProbe(config: ProbeConfig): Promise<ProbeOutcome> {
  const n = config.servers.length
  const perServer = Array.from(
    { length: n },
    (_, i) => Math.floor(config.connections / n) + (i < config.connections % n ? 1 : 0),
  )
  const loads = Promise.all(
    config.servers.map((baseUrl, i) =>
      (config.runLoad ?? runLoad)({
        baseUrl,
        apiKey: config.apiKey,
        seconds: config.seconds,
        connections: perServer[i] as number,
        preload: config.preload,
        seed: config.seed + i * 1_000_003,
      }),
    ),
  )
  const deadline = performance.now() + config.seconds * 1000
  const queryMs: number[] = []
  const failures: string[] = []
  const timeoutMs = config.probeTimeoutMs ?? 30_000
  let k = 0
  /** Markers acknowledged, and markers whose upload failed (they may or may not be stored). */
  let acked = 0
  // A tag of this run: markers of earlier runs on the same project are not counted.
  const tag = randomBytes(4).toString('hex')
  let unsure = 0
  // Markers carry an attribute the background load never sets, so their count is known exactly.
  while (performance.now() < deadline || k < (config.minProbes ?? 0)) {
    const writer = config.servers[k % n] as string
    const reader = config.servers[(k + 1) % n] as string
    const up = await call(
      writer,
      config.apiKey,
      '/v1/user/profiles',
      { field_name: ['user_id', 'probe_marker'], values: [[`probe-${tag}-${k}`, tag]] },
      timeoutMs,
    )
    k++
    if (up.status !== 200) {
      unsure++
      failures.push(`probe ${k}: upload answered ${up.status} ${up.text.slice(0, 120)}`)
      continue
    }
    acked++
    const t0 = performance.now()
    const q = await call(
      reader,
      config.apiKey,
      '/v1/user/segments/query',
      { where: { field: 'probe_marker', op: 'eq', value: tag }, limit: 1 },
      timeoutMs,
    )
    const ms = performance.now() - t0
    if (q.status !== 200) {
      failures.push(`probe ${k}: query answered ${q.status} after ${Math.round(ms)} ms ${q.text.slice(0, 120)}`)
      continue
    }
    queryMs.push(ms)
    const count = (JSON.parse(q.text) as { data: { count: number } }).data.count
    if (count < acked || count > acked + unsure) failures.push(`probe ${k}: count ${count}, acknowledged ${acked}`)
  }
  return { queryMs, failures, probes: k, load: await loads }
}

async function call(
  base: string,
  key: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(base + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    })
    return { status: res.status, text: await res.text() }
  } catch (error) {
    return { status: 0, text: (error as Error).message }
  }
}
