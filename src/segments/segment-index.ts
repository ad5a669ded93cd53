import { performance } from 'node:perf_hooks'
import { TraitbaseError } from '../core/errors.js'
import type { Condition } from '../core/segment.js'
import { ProjectNotIndexedError, type Store } from '../storage/store.js'
import { buildInWorker, WorkerStartError, type BuiltIndex, type FeedSource } from './index-builder.js'
import { ProjectIndex, type AttributeSummary, type IndexPage } from './project-index.js'

/** Answer of {@link SegmentIndex.query}. */
export interface SegmentAnswer {
  /** Exact number of matching users. */
  readonly count: number
  /** One page, ascending user_id (code point order). */
  readonly userIds: string[]
  /** The last user id of the page when more matches follow, else null. */
  readonly nextAfter: string | null
  /** Who answered: the in-memory index, or the database path while the index is not there. */
  readonly source: 'index' | 'database'
}

interface ProjectState {
  index: ProjectIndex
  /** True once a full read of the feed has completed: until then queries take the SQL path. */
  loaded: boolean
  token: string | null
  running: Promise<void> | undefined
  queued: Promise<void> | undefined
  /** When a query last asked for this project (the background catch-up does not count). */
  lastUsed: number
  /** Bytes of `index` after its last read of the feed (what the budget counts). */
  bytes: number
  /** Failed (or over-budget) loads in a row; the next load waits until `retryAt`. */
  failures: number
  retryAt: number
  lastError: string
  /** A spread project (no change feed): every question goes to the database path. */
  unindexed: boolean
  /**
   * Evaluations in flight (they yield between slices and must see one state), and feed pages
   * waiting to be applied: a page waits for the evaluations, and new evaluations wait for a
   * waiting page, so a stream of queries never holds the feed back.
   */
  readers: number
  writers: number
  waiters: (() => void)[]
}

/** Counters and gauges of {@link SegmentIndex}, for /metrics. */
export interface SegmentIndexStats {
  /** Bytes of indexes being loaded, and of loaded ones. */
  readonly loadingBytes: number
  readonly readyBytes: number
  readonly loadingProjects: number
  readonly readyProjects: number
  /** Full loads started (first loads, reloads after pruning, rebuilds). */
  readonly loads: number
  /** Loads that ended in an error. */
  readonly loadFailures: number
  /** Loads given up because the project did not fit the memory budget. */
  readonly overBudget: number
  /** Projects dropped to make room for another. */
  readonly evictions: number
  /** Queries and counts answered by the database path because the index was not there. */
  readonly fallbacks: number
  /** The budget, bytes. */
  readonly budgetBytes: number
}

/** Thrown inside a load that the budget cannot hold. */
class OverBudgetError extends Error {}

/** Thrown by a catch-up whose feed starts over (pruned past the token) when a build thread can read it instead. */
class FeedRestart extends Error {}

/** Full builds in a row one load tries when each one's catch-up finds the feed pruned past it. */
const MAX_BUILDS_PER_LOAD = 3

/** What needs the index itself (the attribute catalog) gets when the project cannot be loaded. */
function unavailable(state: ProjectState): TraitbaseError {
  const retryS = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000))
  return new TraitbaseError(
    'UNAVAILABLE',
    `The segment index of this project could not be loaded (${state.lastError}); counts and pages still work, retry in ${retryS} s`,
  )
}

export interface SegmentIndexOptions {
  /**
   * How often every loaded project catches up with the feed in the background, so the store never
   * prunes the feed past it (which would force a full reload) and queries find little left to read.
   * Default 30 s, well inside the feed's 10-minute retention; 0 turns it off.
   */
  readonly followIntervalMs?: number
  /**
   * A project no query asked about for this long is dropped from memory; its next query takes the
   * SQL path while it reloads. Default 30 minutes; 0 keeps every project for the life of the process.
   */
  readonly idleMs?: number
  /**
   * An index whose dead entries (deleted users, values nobody holds any more) outnumber its live
   * ones is rebuilt from the store once it holds at least this many entries; queries take the SQL
   * path meanwhile. Default 50,000.
   */
  readonly compactMinEntries?: number
  /** Distinct values past which an attribute is packed instead of kept in a dictionary (tests lower it). */
  readonly dictionaryLimit?: number
  /**
   * Bytes all loaded (and loading) indexes may hold together. A project that needs room evicts the
   * least recently queried others; one that does not fit alone is answered by the database path.
   * Default: no limit (the server passes `SEGMENT_INDEX_MEMORY_MB`).
   */
  readonly memoryBudgetBytes?: number
  /**
   * After a failed or over-budget load, the next waits this long, doubling per failure in a row up
   * to 32×. Default 30 s.
   */
  readonly retryAfterMs?: number
  /** Where a failed load is reported (once per failure, with the reason). Default: nowhere. */
  readonly log?: (message: string) => void
  /** Clock, for tests. */
  readonly now?: () => number
  /**
   * Where a worker thread reads the feed to build a project's index ({@link feedSourceOf}): a full
   * load (first load, reload, rebuild) runs there, on its own connection, one at a time per
   * SegmentIndex, and is handed over without a copy; this thread then only catches up with the
   * feed from where the build read it. Default none: loads run on this thread, in pages that yield
   * (in-memory SQLite, which no other connection can open). If the thread cannot start, loads go
   * back to this thread, and that is logged once.
   */
  readonly buildSource?: FeedSource
  /**
   * Milliseconds of evaluation all queries together run per turn of the event loop (see
   * SegmentIndex.pause). Default 20; tests set 0 (a turn before every slice).
   */
  readonly sliceBudgetMs?: number
  /** Tests: pause a build thread after its first page; run another module in it. */
  readonly buildHooks?: { readonly afterFirstPage?: () => Promise<void>; readonly moduleUrl?: string }
}

export const DEFAULT_FOLLOW_INTERVAL_MS = 30_000
export const DEFAULT_INDEX_IDLE_MS = 30 * 60_000
export const DEFAULT_RETRY_AFTER_MS = 30_000
/** Work on the event loop between two turns given to other requests, when a call can split its work. */
const YIELD_AFTER_MS = 20

/** The store methods the index uses: the change feed, and the SQL path while a project loads. */
export type SegmentStore = Pick<Store, 'readChanges' | 'countProfiles' | 'scanProfiles'>

/**
 * In-memory segment indexes of every project this process has been asked about, kept exact by the
 * store's change feed. Each read first catches up with the feed, so it sees every upload that was
 * acknowledged before the read began, whichever process wrote it. A project's first load reads
 * every profile (about a minute per million users); meanwhile counts and pages come from the
 * store's SQL path, which gives the same answers, only slower.
 */
export class SegmentIndex {
  private readonly projects = new Map<number, ProjectState>()
  private readonly idleMs: number
  private readonly compactMinEntries: number
  private readonly dictionaryLimit: number | undefined
  private readonly budget: number
  private readonly retryAfterMs: number
  private readonly log: (message: string) => void
  private readonly now: () => number
  private readonly timer: NodeJS.Timeout | undefined
  /** Database-path questions in flight, by project, condition and page: see {@link queryStore}. */
  private readonly flights = new Map<
    string,
    { running: Promise<SegmentAnswer> | undefined; queued: Promise<SegmentAnswer> | undefined }
  >()
  private counters = { loads: 0, loadFailures: 0, overBudget: 0, evictions: 0, fallbacks: 0 }
  /** Undefined when builds run on this thread (none given, or the build thread could not start). */
  private buildSource: FeedSource | undefined
  private readonly buildHooks: NonNullable<SegmentIndexOptions['buildHooks']>
  /** The end of the last build queued: builds run one after the other. */
  private buildQueue: Promise<void> = Promise.resolve()
  /** See {@link turn}: when the current turn's budget began, and the turn everyone waits for. */
  private budgetStart = Number.NEGATIVE_INFINITY
  private hop: Promise<void> | undefined
  /** A turn began and nobody has run a slice in it yet. */
  private turnFresh = false
  private readonly sliceBudgetMs: number
  /** Stops running builds when the index closes. */
  private readonly closing = new AbortController()

  constructor(
    private readonly store: SegmentStore,
    options: SegmentIndexOptions = {},
  ) {
    this.idleMs = options.idleMs ?? DEFAULT_INDEX_IDLE_MS
    this.compactMinEntries = options.compactMinEntries ?? 50_000
    this.dictionaryLimit = options.dictionaryLimit
    this.budget = options.memoryBudgetBytes ?? Number.POSITIVE_INFINITY
    this.retryAfterMs = options.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS
    this.log = options.log ?? (() => undefined)
    this.now = options.now ?? Date.now
    this.buildSource = options.buildSource
    this.buildHooks = options.buildHooks ?? {}
    this.sliceBudgetMs = options.sliceBudgetMs ?? YIELD_AFTER_MS
    const interval = options.followIntervalMs ?? DEFAULT_FOLLOW_INTERVAL_MS
    if (interval > 0) {
      this.timer = setInterval(() => void this.maintain(), interval)
      this.timer.unref()
    }
  }

  private stateOf(projectId: number): ProjectState {
    let state = this.projects.get(projectId)
    if (state === undefined) {
      state = {
        index: new ProjectIndex(this.dictionaryLimit),
        loaded: false,
        token: null,
        running: undefined,
        queued: undefined,
        lastUsed: 0,
        bytes: 0,
        failures: 0,
        retryAt: 0,
        lastError: '',
        unindexed: false,
        readers: 0,
        writers: 0,
        waiters: [],
      }
      this.projects.set(projectId, state)
    }
    state.lastUsed = this.now()
    return state
  }

  /**
   * Drops projects idle for longer than `idleMs` and lets every other loaded project catch up with
   * the feed. Runs on the follow interval; resolves when those reads are done (tests drive it).
   */
  async maintain(): Promise<void> {
    const now = this.now()
    const reads: Promise<void>[] = []
    for (const [projectId, state] of this.projects) {
      if (state.running !== undefined) continue
      if (this.idleMs > 0 && now - state.lastUsed >= this.idleMs) this.projects.delete(projectId)
      // A failed read is retried on the next interval or query.
      else if (state.loaded) reads.push(this.catchUp(projectId, state).catch(() => undefined))
    }
    await Promise.all(reads)
  }

  /** Projects held in memory (loaded or loading). */
  get projectCount(): number {
    return this.projects.size
  }

  /** What /metrics reports. */
  stats(): SegmentIndexStats {
    let loadingBytes = 0
    let readyBytes = 0
    let loadingProjects = 0
    let readyProjects = 0
    for (const state of this.projects.values()) {
      if (state.loaded) {
        readyBytes += state.bytes
        readyProjects++
      } else if (state.running !== undefined) {
        loadingBytes += state.bytes
        loadingProjects++
      }
    }
    return { ...this.counters, loadingBytes, readyBytes, loadingProjects, readyProjects, budgetBytes: this.budget }
  }

  /**
   * Catches up with the feed (loading the project first if needed) and returns the project's index.
   * A 503 while a failed or over-budget load is backing off, or when this load fails.
   */
  async sync(projectId: number): Promise<ProjectIndex> {
    const state = this.stateOf(projectId)
    if (state.unindexed) throw new ProjectNotIndexedError(projectId)
    if (!state.loaded && state.running === undefined && this.now() < state.retryAt) throw unavailable(state)
    try {
      await this.catchUp(projectId, state)
    } catch (error) {
      if (state.failures > 0 && !state.loaded) throw unavailable(state)
      throw error
    }
    return state.index
  }

  /** True once the project is in memory; until then {@link query} and {@link count} use SQL. */
  isLoaded(projectId: number): boolean {
    return this.projects.get(projectId)?.loaded === true
  }

  /**
   * Starts loading the project in the background, unless a load is under way or the last one failed
   * (or did not fit the budget) less than the back-off ago.
   */
  warm(projectId: number): void {
    const state = this.stateOf(projectId)
    if (state.running === undefined && this.now() >= state.retryAt) {
      this.catchUp(projectId, state).catch(() => undefined)
    }
  }

  /**
   * Single flight per project: a caller that arrives while a read of the feed is under way may
   * have been acknowledged after that read started, so it waits for one more read, shared by every
   * caller arriving meanwhile.
   */
  private catchUp(projectId: number, state: ProjectState): Promise<void> {
    if (state.queued !== undefined) return state.queued
    if (state.running !== undefined) {
      const queued = state.running
        .catch(() => undefined)
        .then(() => {
          state.queued = undefined
          return this.startRead(projectId, state)
        })
      state.queued = queued
      return queued
    }
    return this.startRead(projectId, state)
  }

  private startRead(projectId: number, state: ProjectState): Promise<void> {
    const run = this.readFeed(projectId, state).finally(() => {
      if (state.running === run) state.running = undefined
    })
    state.running = run
    return run
  }

  private async readFeed(projectId: number, state: ProjectState): Promise<void> {
    const full = state.token === null || !state.loaded
    if (full) this.counters.loads++

    try {
      await this.load(projectId, state, full)
      state.failures = 0
      state.retryAt = 0
    } catch (error) {
      if (error instanceof ProjectNotIndexedError) {
        // Spread (for good): drop what was held, no retries, no failure; the database answers.
        state.index = new ProjectIndex(this.dictionaryLimit)
        state.bytes = 0
        state.token = null
        state.loaded = false
        state.unindexed = true
        throw error
      }
      // An incremental read that failed leaves the loaded index as it was (the next read retries).
      if (state.loaded && !(error instanceof OverBudgetError)) throw error
      // A load that failed is dropped whole; the project is answered by the database path until
      // the back-off has passed, instead of a new load starting at every query.
      state.index = new ProjectIndex(this.dictionaryLimit)
      state.bytes = 0
      state.token = null
      state.loaded = false
      state.failures++
      state.lastError = error instanceof Error ? error.message : String(error)
      state.retryAt = this.now() + this.retryAfterMs * 2 ** Math.min(state.failures - 1, 5)
      const retryS = Math.round((state.retryAt - this.now()) / 1000)
      if (error instanceof OverBudgetError) {
        this.counters.overBudget++
        this.log(
          `segment index of project ${projectId} not loaded: ${error.message}; the database answers, next try in ${retryS} s`,
        )
      } else {
        this.counters.loadFailures++
        const reason = error instanceof Error ? error.message : String(error)
        this.log(
          `segment index of project ${projectId} failed to load: ${reason}; the database answers, next try in ${retryS} s`,
        )
      }
      throw error
    }
  }

  /**
   * A full read goes to the build thread when there is one, and then this thread catches up from
   * the token it returned (queries keep the database path until that is done too); otherwise, and
   * for incremental reads, the feed is applied here.
   */
  private async load(projectId: number, state: ProjectState, full: boolean): Promise<void> {
    let builds = 0
    let build = full
    for (;;) {
      if (build && this.buildSource !== undefined) {
        if (builds === MAX_BUILDS_PER_LOAD) {
          throw new Error(
            `the change feed was pruned past the index ${builds} times while it was built (builds take longer than the feed is kept)`,
          )
        }
        builds++
        await this.buildOffThread(projectId, state)
      }
      try {
        await this.applyFeed(projectId, state, full || builds > 0)
        return
      } catch (error) {
        if (!(error instanceof FeedRestart)) throw error
        // A reload, on the build thread like the first load.
        this.counters.loads++
        build = true
      }
    }
  }

  /**
   * Builds the project's index on a worker thread (one build at a time: each takes a core and its
   * memory) and re-assembles it here over the handed-over memory, leaving `state` with the index
   * and the token to catch up from, not yet loaded. What was held is dropped first, so a reload
   * never holds two copies; the bytes built so far count against the budget (state "loading") and
   * a build that cannot fit is stopped.
   */
  private async buildOffThread(projectId: number, state: ProjectState): Promise<void> {
    state.index = new ProjectIndex(this.dictionaryLimit)
    state.bytes = 0
    state.token = null
    state.loaded = false
    const previous = this.buildQueue
    let release = (): void => undefined
    this.buildQueue = new Promise<void>((resolve) => (release = resolve))
    try {
      await previous
      const source = this.buildSource
      if (source === undefined) return
      let built: BuiltIndex
      try {
        built = await buildInWorker({
          source,
          projectId,
          dictionaryLimit: this.dictionaryLimit,
          signal: this.closing.signal,
          onProgress: (bytes) => {
            state.bytes = bytes
            this.makeRoom(projectId)
          },
          ...this.buildHooks,
        })
      } catch (error) {
        if (!(error instanceof WorkerStartError)) throw error
        // The thread could not start (not a failed build): load on this thread from now on.
        if (this.buildSource !== undefined) {
          this.buildSource = undefined
          this.log(
            `segment index build thread could not start (${error.message}); indexes are built on the main thread from now on`,
          )
        }
        return
      }
      state.bytes = built.bytes
      this.makeRoom(projectId)
      state.index = await ProjectIndex.restore(built.snapshot, slicePause())
      state.token = built.token
    } finally {
      release()
    }
  }

  private async applyFeed(projectId: number, state: ProjectState, counted: boolean): Promise<void> {
    const feed = this.store.readChanges(projectId, state.token)
    // A reset starts a fresh index at once (the old one is released, so a reload never holds two
    // copies) and queries take the database path until the read completes. Incremental pages are
    // applied in place (each is a newer state).
    let target = state.index
    for await (const page of feed.pages) {
      if (page.reset) {
        // The first page of a read from scratch, or a token the feed was pruned past: with a build
        // thread, that read is its job.
        if (this.buildSource !== undefined) throw new FeedRestart()
        // A loaded project whose feed was pruned past it: a reload.
        if (!counted) this.counters.loads++
        counted = true
        state.token = null
        state.loaded = false
        target = new ProjectIndex(this.dictionaryLimit)
        state.index = target
      }
      // Room for the page's new users first, one array per turn (a doubling copies every column).
      await target.reserve(page.upserts.length, slicePause())
      await enterWrite(state)
      try {
        for (const userId of page.deletedUserIds) target.remove(userId)
        for (const profile of page.upserts) target.upsert(profile.userId, profile.attributes)
      } finally {
        exitWrite(state)
      }
      state.bytes = target.memoryBytes()
      this.makeRoom(projectId)
    }
    state.index = target
    state.token = feed.token()
    // Ids the catch-up added out of order are sorted now, in slices, not by the first page.
    if (!state.loaded) await target.sortInSlices(slicePause())
    state.loaded = true
    const { total, dead } = target.entries()
    if (total >= this.compactMinEntries && dead * 2 > total) {
      // Rebuild: the next read starts over into a fresh index, and until it is done (started by the
      // next query or at once here) queries take the SQL path. This read's answer is still exact.
      state.token = null
      state.loaded = false
    }
  }

  /**
   * Keeps every index together within the budget: evicts the least recently queried other projects
   * (not those mid-read) until project `projectId` fits, and throws {@link OverBudgetError} when it cannot.
   */
  private makeRoom(projectId: number): void {
    let total = 0
    for (const other of this.projects.values()) total += other.bytes
    if (total <= this.budget) return
    const victims = [...this.projects]
      .filter(([id, other]) => id !== projectId && other.running === undefined && other.bytes > 0)
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed)
    for (const [id, other] of victims) {
      this.projects.delete(id)
      total -= other.bytes
      this.counters.evictions++
      if (total <= this.budget) return
    }
    if (total > this.budget) {
      throw new OverBudgetError(
        `its index needs more than the memory budget of ${Math.round(this.budget / 2 ** 20)} MiB (SEGMENT_INDEX_MEMORY_MB)`,
      )
    }
  }

  /**
   * The project's index caught up with the feed, or undefined when the database must answer: not
   * loaded yet (a load is started, unless backing off), or dropped by this catch-up (it outgrew the
   * budget, or its feed was pruned past it).
   */
  private async loadedIndex(projectId: number): Promise<ProjectIndex | undefined> {
    if (this.projects.get(projectId)?.unindexed === true) {
      this.stateOf(projectId)
      return undefined
    }
    if (!this.isLoaded(projectId)) {
      this.warm(projectId)
      return undefined
    }
    try {
      const index = await this.sync(projectId)
      return this.isLoaded(projectId) ? index : undefined
    } catch (error) {
      if (this.isLoaded(projectId) || !(error instanceof TraitbaseError)) throw error
      return undefined
    }
  }

  /** Count plus one page of the users matching `where`, after `afterUserId` when given. */
  async query(projectId: number, where: Condition, limit: number, afterUserId?: string): Promise<SegmentAnswer> {
    const index = await this.loadedIndex(projectId)
    if (index === undefined) {
      this.counters.fallbacks++
      return this.queryStore(projectId, where, limit, afterUserId)
    }
    // Large projects: evaluated a slice of users at a time, yielding between slices; the feed
    // waits meanwhile, so the answer is exact for one state, at least as new as this call's catch-up.
    const state = this.stateOf(projectId)
    await enterRead(state)
    try {
      const set = await index.evaluateInSlices(where, this.turn)
      await index.sortInSlices(slicePause())
      const page: IndexPage = index.page(set, afterUserId, limit)
      const last = page.userIds[page.userIds.length - 1]
      return {
        count: index.count(set),
        userIds: page.userIds,
        nextAfter: page.more && last !== undefined ? last : null,
        source: 'index',
      }
    } finally {
      exitRead(state)
    }
  }

  /**
   * The database path, single flight per identical question: while a scan for the same project,
   * condition and page runs, callers wait for the next one, which starts after it and answers them
   * all (a caller may have been acknowledged after the running scan began, so it cannot share that
   * one). Thirty clients polling one segment during a warm-up cost two scans at a time, not thirty.
   */
  private queryStore(
    projectId: number,
    where: Condition,
    limit: number,
    afterUserId: string | undefined,
  ): Promise<SegmentAnswer> {
    const key = JSON.stringify([projectId, where, limit, afterUserId ?? null])
    let flight = this.flights.get(key)
    if (flight === undefined) {
      flight = { running: undefined, queued: undefined }
      this.flights.set(key, flight)
    }
    const f = flight
    if (f.queued !== undefined) return f.queued
    const start = (): Promise<SegmentAnswer> => {
      const run = this.scanStore(projectId, where, limit, afterUserId).finally(() => {
        if (f.running === run) f.running = undefined
        if (f.running === undefined && f.queued === undefined) this.flights.delete(key)
      })
      f.running = run
      return run
    }
    if (f.running === undefined) return start()
    const queued = f.running
      .catch(() => undefined)
      .then(() => {
        f.queued = undefined
        return start()
      })
    f.queued = queued
    return queued
  }

  private async scanStore(
    projectId: number,
    where: Condition,
    limit: number,
    afterUserId: string | undefined,
  ): Promise<SegmentAnswer> {
    const count = await this.store.countProfiles(projectId, where)
    const rows = await this.store.scanProfiles(projectId, {
      where,
      limit: limit + 1,
      ...(afterUserId === undefined ? {} : { afterUserId }),
    })
    const userIds = rows.slice(0, limit).map((p) => p.userId)
    const last = userIds[userIds.length - 1]
    return { count, userIds, nextAfter: rows.length > limit && last !== undefined ? last : null, source: 'database' }
  }

  /** Exact number of users matching `where`. */
  async count(projectId: number, where: Condition): Promise<number> {
    return (await this.countMany(projectId, [where]))[0] as number
  }

  /** Exact counts for several conditions, after one catch-up with the feed. */
  async countMany(projectId: number, wheres: readonly Condition[]): Promise<number[]> {
    const index = await this.loadedIndex(projectId)
    if (index === undefined) {
      this.counters.fallbacks++
      const counts: number[] = []
      for (const where of wheres) counts.push(await this.store.countProfiles(projectId, where))
      return counts
    }
    // Many saved segments: the event loop gets a turn every ~20 ms of counting. Each count is exact
    // for a moment after the call began (a catch-up may land between two of them).
    const counts: number[] = []
    const state = this.stateOf(projectId)
    for (const where of wheres) {
      await enterRead(state)
      try {
        counts.push(index.count(await index.evaluateInSlices(where, this.turn)))
      } finally {
        exitRead(state)
      }
    }
    return counts
  }

  /**
   * The project's users and attribute catalog (see {@link ProjectIndex.catalog}) from one state of
   * the index; a packed column's scan takes turns like a query.
   */
  async catalog(projectId: number): Promise<{ users: number; attributes: AttributeSummary[] }> {
    const index = await this.sync(projectId)
    const state = this.stateOf(projectId)
    await enterRead(state)
    try {
      return { users: index.users, attributes: await index.catalogInSlices(this.turn) }
    } finally {
      exitRead(state)
    }
  }

  /** Drops every project's index (they reload on the next read). */
  clear(): void {
    this.projects.clear()
  }

  /**
   * Asked right before each slice of an evaluation: undefined when the caller may run it now, else
   * a turn of the event loop to wait for, after which the caller asks again. All queries share one
   * budget of `sliceBudgetMs` of slices per turn: once it is spent, every caller waits for one
   * shared `setImmediate`; the first to ask after it always runs. Thirty-two clients asking at once
   * then take turns with uploads, timers and `/healthz` (fast slices still run several per turn)
   * instead of running back to back in one phase of the event loop. The answer is synchronous on
   * purpose: a check that resolved a promise let every waiting query pass it before any of them
   * ran its slice, and the 32 slices then ran in one go (a 130 ms stall at 1M users).
   */
  private readonly turn = (): Promise<void> | undefined => {
    if (this.turnFresh || performance.now() - this.budgetStart < this.sliceBudgetMs) {
      this.turnFresh = false
      return undefined
    }
    this.hop ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.hop = undefined
        this.budgetStart = performance.now()
        this.turnFresh = true
        resolve()
      }),
    )
    return this.hop
  }

  /** Stops the background catch-up and any build thread; the index still answers, catching up on each read. */
  close(): void {
    clearInterval(this.timer)
    this.closing.abort()
  }
}

async function enterRead(state: ProjectState): Promise<void> {
  while (state.writers > 0) await new Promise<void>((resolve) => state.waiters.push(resolve))
  state.readers++
}

function exitRead(state: ProjectState): void {
  if (--state.readers === 0) wake(state)
}

async function enterWrite(state: ProjectState): Promise<void> {
  state.writers++
  while (state.readers > 0) await new Promise<void>((resolve) => state.waiters.push(resolve))
}

function exitWrite(state: ProjectState): void {
  state.writers--
  wake(state)
}

function wake(state: ProjectState): void {
  const waiters = state.waiters
  state.waiters = []
  for (const resolve of waiters) resolve()
}

/** A pause for long loops on the event loop: gives other work a turn once ~{@link YIELD_AFTER_MS} have passed. */
function slicePause(): () => Promise<void> {
  let slice = performance.now()
  return async () => {
    if (performance.now() - slice < YIELD_AFTER_MS) return
    await new Promise((resolve) => setImmediate(resolve))
    slice = performance.now()
  }
}
