import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { SegmentIndexStats } from '../segments/segment-index.js'
import type { UploadOutcome } from '../storage/store.js'

/** The server's Prometheus metrics, in a registry of its own so several apps in one process never clash. */
export interface Metrics {
  readonly registry: Registry
  /** Counts what one successful upload did. */
  recordUpload(outcome: UploadOutcome): void
  /** Counts a response to a request that never reached a route (the HTTP parser refused it, or it timed out). */
  recordUnrouted(status: number): void
  readonly requests: Counter<'route' | 'method' | 'status'>
  readonly duration: Histogram<'route' | 'method'>
  /** Reports the segment index's figures (read at each scrape). */
  observeSegmentIndex(stats: () => SegmentIndexStats): void
}

/** Set on a socket by the client-error handler: the status it answered, so the response is counted as that, not 499. */
export const ANSWERED_STATUS = Symbol('traitbase.answeredStatus')

/**
 * Creates the registry and its metrics. `defaultMetrics` adds Node's process metrics (CPU, memory,
 * event loop lag, GC); default true, tests turn it off to avoid one set of observers per app.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry })
  const usersCreated = new Counter({
    name: 'traitbase_users_created_total',
    help: 'Users created by uploads',
    registers: [registry],
  })
  const usersUpdated = new Counter({
    name: 'traitbase_users_updated_total',
    help: 'Existing users changed by uploads',
    registers: [registry],
  })
  const valuesWritten = new Counter({
    name: 'traitbase_attribute_values_written_total',
    help: 'Attribute values set by uploads (clears not counted)',
    registers: [registry],
  })
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP responses by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request received to response sent, by route and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  let segmentStats: (() => SegmentIndexStats) | undefined
  // Read from the index at each scrape: nothing is counted twice and the index keeps one set of counters.
  const fromIndex = (name: string, help: string, read: (s: SegmentIndexStats) => number, counter: boolean) => {
    const collect = function (this: Counter | Gauge) {
      if (segmentStats === undefined) return
      this.reset()
      this.inc(read(segmentStats()))
    }
    if (counter) new Counter({ name, help, registers: [registry], collect })
    else new Gauge({ name, help, registers: [registry], collect })
  }
  new Gauge({
    name: 'traitbase_segment_index_bytes',
    help: 'Bytes held by in-memory segment indexes, by state (loading: a load under way; ready: answering queries)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      if (segmentStats === undefined) return
      const s = segmentStats()
      this.set({ state: 'loading' }, s.loadingBytes)
      this.set({ state: 'ready' }, s.readyBytes)
    },
  })
  new Gauge({
    name: 'traitbase_segment_index_projects',
    help: 'Projects with an in-memory segment index, by state',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      if (segmentStats === undefined) return
      const s = segmentStats()
      this.set({ state: 'loading' }, s.loadingProjects)
      this.set({ state: 'ready' }, s.readyProjects)
    },
  })
  fromIndex(
    'traitbase_segment_index_budget_bytes',
    'SEGMENT_INDEX_MEMORY_MB in bytes',
    (s) => (Number.isFinite(s.budgetBytes) ? s.budgetBytes : 0),
    false,
  )
  fromIndex('traitbase_segment_index_loads_total', 'Full loads of a project index started', (s) => s.loads, true)
  fromIndex(
    'traitbase_segment_index_load_failures_total',
    'Index loads that failed (logged with the reason; retried after a back-off)',
    (s) => s.loadFailures,
    true,
  )
  fromIndex(
    'traitbase_segment_index_over_budget_total',
    'Index loads given up because the project did not fit SEGMENT_INDEX_MEMORY_MB',
    (s) => s.overBudget,
    true,
  )
  fromIndex(
    'traitbase_segment_index_evictions_total',
    'Project indexes evicted (least recently queried first) to make room for another',
    (s) => s.evictions,
    true,
  )
  fromIndex(
    'traitbase_segment_index_fallbacks_total',
    'Segment queries and counts answered by the database because the index was not loaded',
    (s) => s.fallbacks,
    true,
  )
  return {
    registry,
    requests,
    duration,
    observeSegmentIndex(stats) {
      segmentStats = stats
    },
    recordUnrouted(status) {
      requests.inc({ route: '(unmatched)', method: '(unparsed)', status })
    },
    recordUpload(outcome) {
      if (outcome.created > 0) usersCreated.inc(outcome.created)
      if (outcome.updated > 0) usersUpdated.inc(outcome.updated)
      if (outcome.valuesWritten > 0) valuesWritten.inc(outcome.valuesWritten)
    },
  }
}

/**
 * Counts every response by route pattern (never the raw URL: user ids stay out of labels and the
 * label set stays bounded), method and status, and times it; serves `GET /metrics` without auth.
 */
export function registerMetrics(app: FastifyInstance, metrics: Metrics): void {
  const { requests, duration } = metrics
  // Unmatched paths share one label so scanners cannot grow the label set.
  const routeOf = (request: FastifyRequest) =>
    request.is404 ? '(unmatched)' : (request.routeOptions.url ?? '(unmatched)')
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request)
    requests.inc({ route, method: request.method, status: reply.statusCode })
    duration.observe({ route, method: request.method }, reply.elapsedTime / 1000)
    done()
  })
  // A client that leaves before the response is complete never reaches onResponse: count it as
  // 499 ("client closed request", as nginx logs it), so abandoned exports show up.
  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return
      // The client-error handler may have answered on the raw socket (a 408 when the body stopped coming).
      const answered = (request.raw.socket as { [ANSWERED_STATUS]?: number } | null)?.[ANSWERED_STATUS]
      requests.inc({ route: routeOf(request), method: request.method, status: answered ?? 499 })
    })
    done()
  })
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
