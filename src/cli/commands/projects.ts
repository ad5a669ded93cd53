import { TraitbaseError } from '../../core/errors.js'
import { checkAttributeName, checkIndexKind } from '../../storage/attribute-index.js'
import type { Store } from '../../storage/store.js'
import type { Output } from '../output.js'
import { checkName } from './keys.js'

export interface SetRateLimitOptions {
  readonly store: Store
  readonly out: Output
  readonly project: string
  /** Requests per minute per key, `0` for none, or `default` for the server's `RATE_LIMIT`. */
  readonly limit: string
}

/**
 * Stores a project's own rate limit (requests per minute, per key). Every server process reads it
 * with the key on each request, so it applies from the next request on, without a restart.
 */
export async function setRateLimit({ store, out, project, limit }: SetRateLimitOptions): Promise<number | null> {
  const raw = limit.trim().toLowerCase()
  let perMinute: number | null
  if (raw === 'default') perMinute = null
  else if (/^\d+$/.test(raw) && Number(raw) <= 10_000_000) perMinute = Number(raw)
  else {
    throw new TraitbaseError(
      'BAD_REQUEST',
      `LIMIT must be requests per minute per key (0 to 10000000; 0 = unlimited) or "default", got "${limit}"`,
    )
  }
  const result = await store.setProjectRateLimit(project, perMinute)
  if (result === undefined) throw new TraitbaseError('NOT_FOUND', `No project named "${project}"`)
  out.out(
    perMinute === null
      ? `Project "${project}": rate limit back to the server's RATE_LIMIT.`
      : perMinute === 0
        ? `Project "${project}": no rate limit for its keys.`
        : `Project "${project}": ${perMinute} requests per minute per key.`,
  )
  return perMinute
}

export interface TimeZoneOptions {
  readonly store: Store
  readonly out: Output
  readonly project: string
  /** The IANA zone to set; absent: print the current one. */
  readonly timeZone?: string
}

/**
 * Prints or sets the project's time zone: where bare dates in segment conditions and stored values
 * begin, and the calendar "days", "weeks" and "months" of relative date conditions step in. The
 * project must exist (a mistyped name must not create one). Returns the zone now in force.
 */
export async function projectTimeZone(options: TimeZoneOptions): Promise<string> {
  const { store, out } = options
  const name = checkName('project name', options.project)
  const project = await store.findProject(name)
  if (project === undefined) {
    throw new TraitbaseError('NOT_FOUND', `no project named "${name}" (create one with: traitbase keys create)`)
  }
  if (options.timeZone === undefined) {
    const zone = (await store.getProjectTimeZone(project.id)) ?? 'UTC'
    out.out(zone)
    return zone
  }
  let zone: string | undefined
  try {
    zone = await store.setProjectTimeZone(project.id, options.timeZone)
  } catch (error) {
    // The store's message names the API field; on the command line it is the argument.
    if (error instanceof TraitbaseError && error.code === 'VALIDATION_FAILED') {
      throw new TraitbaseError('BAD_REQUEST', error.message.replace(/^time_zone: /, 'ZONE: '))
    }
    throw error
  }
  if (zone === undefined) throw new TraitbaseError('NOT_FOUND', `project "${name}" vanished`)
  out.out(`Project "${project.name}" now uses time zone ${zone}.`)
  return zone
}

/** What a store offers when it runs on Citus (PostgresStore): checked by shape, so the CLI never loads `pg` for SQLite. */
interface IsolatingStore {
  isolateProject(projectId: number): Promise<{ shardId: string; nodePort: number; movedFrom: number }>
}

/** Thrown when the database is not a Citus cluster; the CLI exits 2 with its message. */
export class NeedsCitusError extends Error {}

/**
 * Gives a big project a shard of its own on the least loaded worker (Citus only; see
 * `PostgresStore.isolateProject`). Writes to that project wait while its rows are copied.
 */
export async function isolateProject({
  store,
  out,
  project,
}: {
  store: Store
  out: Output
  project: string
}): Promise<void> {
  const found = await store.findProject(project)
  if (found === undefined) throw new TraitbaseError('NOT_FOUND', `No project named "${project}"`)
  const isolating = store as Partial<IsolatingStore>
  if (store.kind !== 'postgres' || typeof isolating.isolateProject !== 'function') {
    throw new NeedsCitusError('projects isolate needs a Citus cluster (DATABASE_URL pointing at its coordinator)')
  }
  let moved: Awaited<ReturnType<IsolatingStore['isolateProject']>>
  try {
    moved = await isolating.isolateProject(found.id)
  } catch (error) {
    // Plain PostgreSQL has no isolate_tenant_to_new_shard (undefined_function).
    if ((error as { code?: unknown }).code === '42883') {
      throw new NeedsCitusError('projects isolate needs a Citus cluster: this PostgreSQL has no Citus extension')
    }
    throw error
  }
  out.out(
    `Project "${project}" now alone on shard ${moved.shardId} on worker :${moved.nodePort}` +
      (moved.movedFrom === moved.nodePort ? '.' : ` (moved from :${moved.movedFrom}).`),
  )
}

/** What a PostgresStore offers to spread a project (checked by shape, like {@link IsolatingStore}). */
interface SpreadingStore {
  spreadProject(projectId: number, buckets: number): Promise<{ keys: string[]; workers: number[]; already: boolean }>
}

/**
 * Spreads an empty project over BUCKETS buckets on every worker (Citus only; see
 * `PostgresStore.spreadProject` and docs/scaling.md). SQLite and plain PostgreSQL: a usage error.
 */
export async function spreadProject({
  store,
  out,
  project,
  buckets,
}: {
  store: Store
  out: Output
  project: string
  buckets: string
}): Promise<void> {
  const count = /^[0-9]{1,4}$/.test(buckets) ? Number(buckets) : Number.NaN
  if (!Number.isInteger(count) || count < 2)
    throw new NeedsCitusError(`--buckets must be an integer of at least 2, not "${buckets}"`)
  const found = await store.findProject(project)
  if (found === undefined) throw new TraitbaseError('NOT_FOUND', `No project named "${project}"`)
  const spreading = store as Partial<SpreadingStore>
  if (store.kind !== 'postgres' || typeof spreading.spreadProject !== 'function') {
    throw new NeedsCitusError('projects spread needs a Citus cluster (DATABASE_URL pointing at its coordinator)')
  }
  let result: Awaited<ReturnType<SpreadingStore['spreadProject']>>
  try {
    result = await (spreading as SpreadingStore).spreadProject(found.id, count)
  } catch (error) {
    // Refusals (not Citus, not empty, another count) are the user's to fix: exit 2 with the reason.
    if (error instanceof TraitbaseError && error.status < 500) throw new NeedsCitusError(error.message)
    throw error
  }
  const perWorker = new Map<number, number>()
  for (const port of result.workers) perWorker.set(port, (perWorker.get(port) ?? 0) + 1)
  const where = [...perWorker].map(([port, n]) => `${n} on :${port}`).join(', ')
  out.out(
    result.already
      ? `Project "${project}" is spread over ${result.keys.length} buckets already (${where}).`
      : `Project "${project}" is now spread over ${result.keys.length} buckets (${where}); its segments are counted by the database.`,
  )
}

export interface IndexAttributesOptions {
  readonly store: Store
  readonly out: Output
  readonly project: string
  /** Attributes to index (or with `drop`, to stop indexing); none: list the project's indexes. */
  readonly attributes: readonly string[]
  /** `text` (default: eq, neq, in, not_in, exists, not_exists) or `number` (gt, gte, lt, lte). */
  readonly kind?: string
  readonly drop?: boolean
  /** For tests: the clock that times each build. */
  readonly now?: () => number
}

/**
 * Lists, adds or drops a project's attribute indexes: the database indexes the database path of
 * segment queries uses while the in-memory index is not there. Each index costs uploads to that
 * project (one more index entry per user written), so it is the operator's choice which attributes
 * are worth it. Every name and the kind are checked before anything is built.
 */
export async function indexAttributes(options: IndexAttributesOptions): Promise<void> {
  const { store, out } = options
  const now = options.now ?? Date.now
  const name = checkName('project name', options.project)
  const project = await store.findProject(name)
  if (project === undefined) {
    throw new TraitbaseError('NOT_FOUND', `no project named "${name}" (create one with: traitbase keys create)`)
  }
  if (options.attributes.length === 0) {
    if (options.drop === true) throw new TraitbaseError('BAD_REQUEST', '--drop needs the ATTRIBUTE names to drop')
    const indexes = await store.listAttributeIndexes(project.id)
    if (indexes.length === 0) out.out(`Project "${project.name}" has no attribute indexes.`)
    for (const i of indexes) out.out(`${i.name}\t${i.kind}\t${i.indexName}\tcreated ${i.createdAt}`)
    return
  }
  const kind = checkIndexKind(options.kind ?? 'text')
  for (const attribute of options.attributes) checkAttributeName(attribute)
  if (store.kind === 'sqlite' && options.drop !== true) {
    // Measured (npm run bench:attribute-indexes, README): SQLite rewrites an expression index's
    // entry whenever the row's attributes change, even to the same value, and writes every index
    // page so dirtied into its WAL at commit.
    out.err(
      'note: on SQLite every attribute index costs uploads to this project, even those that leave its value unchanged ' +
        '(at 1M users: one index 0.47-0.64x the upload rate, five 0.13-0.23x); index what you segment by; see the README',
    )
  }
  for (const attribute of options.attributes) {
    if (options.drop === true) {
      const dropped = await store.dropAttributeIndex(project.id, attribute, kind)
      out.out(
        dropped
          ? `Project "${project.name}": dropped the ${kind} index on "${attribute}".`
          : `Project "${project.name}": there was no ${kind} index on "${attribute}".`,
      )
      continue
    }
    const started = now()
    const { created } = await store.createAttributeIndex(project.id, attribute, kind)
    out.out(
      created
        ? `Project "${project.name}": built the ${kind} index on "${attribute}" in ${((now() - started) / 1000).toFixed(1)} s.`
        : `Project "${project.name}": "${attribute}" already has a ${kind} index.`,
    )
  }
}
