import type { Condition } from '../core/segment.js'
import type { Store } from '../storage/store.js'
import { ProjectIndex, type AttributeSummary, type IndexPage } from './project-index.js'

/** Answer of {@link SegmentIndex.query}. */
export interface SegmentAnswer {
  /** Exact number of matching users. */
  readonly count: number
  /** One page, ascending user_id (code point order). */
  readonly userIds: string[]
  /** The last user id of the page when more matches follow, else null. */
  readonly nextAfter: string | null
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
  /** Clock, for tests. */
  readonly now?: () => number
}

export const DEFAULT_FOLLOW_INTERVAL_MS = 30_000
export const DEFAULT_INDEX_IDLE_MS = 30 * 60_000

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
  private readonly now: () => number
  private readonly timer: NodeJS.Timeout | undefined

  constructor(
    private readonly store: SegmentStore,
    options: SegmentIndexOptions = {},
  ) {
    this.idleMs = options.idleMs ?? DEFAULT_INDEX_IDLE_MS
    this.compactMinEntries = options.compactMinEntries ?? 50_000
    this.dictionaryLimit = options.dictionaryLimit
    this.now = options.now ?? Date.now
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

  /** Catches up with the feed (loading the project first if needed) and returns the project's index. */
  async sync(projectId: number): Promise<ProjectIndex> {
    const state = this.stateOf(projectId)
    await this.catchUp(projectId, state)
    return state.index
  }

  /** True once the project is in memory; until then {@link query} and {@link count} use SQL. */
  isLoaded(projectId: number): boolean {
    return this.projects.get(projectId)?.loaded === true
  }

  /** Starts loading the project in the background; a failure is retried by the next call. */
  warm(projectId: number): void {
    const state = this.stateOf(projectId)
    if (state.running === undefined) this.catchUp(projectId, state).catch(() => undefined)
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
    const feed = this.store.readChanges(projectId, state.token)
    // A reset is loaded into a fresh index and swapped in at the end, so concurrent readers never
    // see a half-loaded project; incremental pages are applied in place (each is a newer state).
    let target = state.index
    for await (const page of feed.pages) {
      if (page.reset) {
        state.token = null
        target = new ProjectIndex(this.dictionaryLimit)
        // A loaded project whose feed was pruned past it reloads in full: meanwhile queries take the
        // SQL path instead of waiting for the reload.
        state.loaded = false
      }
      for (const userId of page.deletedUserIds) target.remove(userId)
      for (const profile of page.upserts) target.upsert(profile.userId, profile.attributes)
    }
    state.index = target
    state.token = feed.token()
    state.loaded = true
    const { total, dead } = target.entries()
    if (total >= this.compactMinEntries && dead * 2 > total) {
      // Rebuild: the next read starts over into a fresh index, and until it is done (started by the
      // next query or at once here) queries take the SQL path. This read's answer is still exact.
      state.token = null
      state.loaded = false
    }
  }

  /** Count plus one page of the users matching `where`, after `afterUserId` when given. */
  async query(projectId: number, where: Condition, limit: number, afterUserId?: string): Promise<SegmentAnswer> {
    if (!this.isLoaded(projectId)) {
      this.warm(projectId)
      return this.queryStore(projectId, where, limit, afterUserId)
    }
    const index = await this.sync(projectId)
    const set = index.evaluate(where)
    const page: IndexPage = index.page(set, afterUserId, limit)
    const last = page.userIds[page.userIds.length - 1]
    return { count: index.count(set), userIds: page.userIds, nextAfter: page.more && last !== undefined ? last : null }
  }

  private async queryStore(
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
    return { count, userIds, nextAfter: rows.length > limit && last !== undefined ? last : null }
  }

  /** Exact number of users matching `where`. */
  async count(projectId: number, where: Condition): Promise<number> {
    return (await this.countMany(projectId, [where]))[0] as number
  }

  /** Exact counts for several conditions, after one catch-up with the feed. */
  async countMany(projectId: number, wheres: readonly Condition[]): Promise<number[]> {
    if (!this.isLoaded(projectId)) {
      this.warm(projectId)
      const counts: number[] = []
      for (const where of wheres) counts.push(await this.store.countProfiles(projectId, where))
      return counts
    }
    const index = await this.sync(projectId)
    return wheres.map((where) => index.count(index.evaluate(where)))
  }

  /** The attribute catalog: see {@link ProjectIndex.catalog}. */
  async catalog(projectId: number): Promise<AttributeSummary[]> {
    return (await this.sync(projectId)).catalog()
  }

  /** Drops every project's index (they reload on the next read). */
  clear(): void {
    this.projects.clear()
  }

  /** Stops the background catch-up; the index still answers, catching up on each read. */
  close(): void {
    clearInterval(this.timer)
  }
}
