import type pg from 'pg'
import { USER_ID_FIELD } from '../../core/limits.js'
import type { Condition } from '../../core/segment.js'
import { projectFilter } from '../attribute-index.js'
import { compileCondition, postgresDialect, type CompiledSql } from '../sql-dialect.js'
import type { ScanOptions } from '../store.js'

/**
 * `text` attribute indexes on plain PostgreSQL (issue 7): the side table `attribute_values
 * (project_id, name, value, user_id)`, primary key in that order, holds one row per user and
 * indexed text attribute: its value behind {@link PRESENT}, or {@link ABSENT} when the user has none (migration
 * `0004_attribute_values`). A count of an `eq` (or a `not_exists`) is then a range count of that
 * key (an index-only scan: PostgreSQL 15 cannot count from an expression index on `profiles`
 * without visiting the heap), an `in` one range per value, an `all` of such leaves a merge join on
 * `user_id` (each range is in user_id order), and a first page walks a range in user_id order.
 * Citus keeps expression indexes on `profiles` (see the store).
 *
 * Kept exact by statement-level triggers on `profiles` (transition tables: every write path, the
 * upload and delete functions included, pays one set-based comparison per statement and updates
 * only the pairs whose value changed). A build and a writer meet on a per-project advisory lock,
 * see {@link buildAttributeValues}.
 */

/** First key of the two-key advisory lock a build holds exclusively and every write to a project's profiles shares ("tbav"). */
export const ATTRIBUTE_VALUES_LOCK = 0x74626176

/** The side table's value for "no value"; a value is stored behind {@link PRESENT} (so `''` stays a value). */
export const ABSENT = ''
export const PRESENT = 'v'

/** An `in` with more values than this is counted from the side table but not paged from it (one ordered range per value). */
export const MAX_PAGE_RANGES = 32

/** Hooks for tests that pin the race between a build and concurrent writers. */
export interface BuildHooks {
  /** Called once the build holds the project's lock, before it reads the profiles. */
  readonly locked?: () => Promise<void>
}

/**
 * Fills the side table for (project, name) and registers the index, in one transaction that holds
 * the project's advisory lock exclusively; every write to `profiles` takes it shared in its trigger,
 * before reading the registry. So a write either took the lock first (the build waits for it to
 * commit, and the backfill's snapshot sees its rows), or its trigger waits for the build to commit
 * and then sees the registry row and the backfilled pairs, and applies its own change as a diff
 * (its transition tables hold its old and new rows, whatever the backfill read). The project's
 * writers wait during the backfill (seconds at 1M users); other projects' writers do not.
 * Returns false when the index was registered already.
 */
export async function buildAttributeValues(
  client: pg.ClientBase,
  projectId: number,
  name: string,
  indexName: string,
  hooks: BuildHooks = {},
): Promise<boolean> {
  await client.query('BEGIN')
  try {
    // A build on 1M users takes seconds: not bounded by a request's statement timeout.
    await client.query('SET LOCAL statement_timeout = 0')
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [ATTRIBUTE_VALUES_LOCK, projectId])
    await hooks.locked?.()
    const { rowCount } = await client.query(
      `INSERT INTO attribute_indexes (project_id, name, kind, index_name) VALUES ($1, $2, 'text', $3) ON CONFLICT DO NOTHING`,
      [projectId, name, indexName],
    )
    if (rowCount !== 1) {
      await client.query('ROLLBACK')
      return false
    }
    // Nothing of a dropped index survives (dropAttributeValues holds the same lock), but be sure.
    await client.query('DELETE FROM attribute_values WHERE project_id = $1 AND name = $2', [projectId, name])
    await client.query(
      // In key order: the index grows at its end instead of splitting pages all over.
      `INSERT INTO attribute_values (project_id, name, value, user_id)
       SELECT project_id, $2, coalesce('v' || (attributes ->> $2), ''), user_id FROM profiles WHERE project_id = $1
       ORDER BY coalesce('v' || (attributes ->> $2), '') COLLATE "C", user_id`,
      [projectId, name],
    )
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
  // Statistics for the planner, and the visibility map for index-only scans (outside a transaction).
  await client.query('VACUUM (ANALYZE) attribute_values')
  return true
}

/** Unregisters the index and deletes its pairs, under the project's lock (see {@link buildAttributeValues}). */
export async function dropAttributeValues(client: pg.ClientBase, projectId: number, name: string): Promise<boolean> {
  await client.query('BEGIN')
  try {
    await client.query('SET LOCAL statement_timeout = 0')
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [ATTRIBUTE_VALUES_LOCK, projectId])
    const { rowCount } = await client.query(
      `DELETE FROM attribute_indexes WHERE project_id = $1 AND name = $2 AND kind = 'text'`,
      [projectId, name],
    )
    await client.query('DELETE FROM attribute_values WHERE project_id = $1 AND name = $2', [projectId, name])
    await client.query('COMMIT')
    return rowCount === 1
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/**
 * A leaf the side table answers as one range of its key or a few (`in` of values; `eq` and
 * `not_exists` as one value, `not_exists` being {@link ABSENT}), or as a filtered range (`exists`,
 * `neq`, `not_in`: every value but {@link ABSENT}, and but the given ones).
 */
type ValueLeaf =
  | { readonly field: string; readonly op: 'in'; readonly values: readonly string[] }
  | { readonly field: string; readonly op: 'not_in'; readonly values: readonly string[] }

function valueLeaf(c: Condition, names: ReadonlySet<string>): ValueLeaf | undefined {
  if (!('field' in c) || c.field === USER_ID_FIELD || !names.has(c.field)) return undefined
  const given = (values: readonly string[]) => [...new Set(values)].map((v) => PRESENT + v)
  if (c.kind === 'text' && c.op === 'eq') return { field: c.field, op: 'in', values: given([c.value]) }
  if (c.kind === 'text' && c.op === 'neq') return { field: c.field, op: 'not_in', values: given([c.value]) }
  if (c.kind === 'set') return { field: c.field, op: c.op, values: given(c.values) }
  if (c.kind === 'presence' && c.op === 'exists') return { field: c.field, op: 'not_in', values: [] }
  if (c.kind === 'presence' && c.op === 'not_exists') return { field: c.field, op: 'in', values: [ABSENT] }
  return undefined
}

/** The children of nested `all`s, flattened. */
function conjuncts(c: Condition): Condition[] {
  return c.kind === 'all' ? c.of.flatMap(conjuncts) : [c]
}

class Params {
  readonly list: unknown[] = []
  bind(v: unknown): string {
    this.list.push(v)
    return `$${this.list.length}`
  }
  /** `cond` compiled over `alias`'s profile columns, its parameters appended. */
  compile(cond: Condition, alias: string): string {
    const compiled = compileCondition(cond, postgresDialect, this.list.length + 1, {
      userId: `${alias}.user_id`,
      attrs: `${alias}.attributes`,
    })
    this.list.push(...compiled.params)
    return compiled.sql
  }
}

/** The tests of `leaf` on side-table alias `v` (project, name and value), parameters bound. */
function leafTests(leaf: ValueLeaf, v: string, projectId: number, params: Params): string {
  const sql = `${v}.${projectFilter(projectId)} AND ${v}.name = ${params.bind(leaf.field)}`
  if (leaf.op === 'in') {
    return leaf.values.length === 1
      ? `${sql} AND ${v}.value = ${params.bind(leaf.values[0])}`
      : `${sql} AND ${v}.value = ANY(${params.bind(leaf.values)}::text[])`
  }
  const present = `${sql} AND ${v}.value > ${params.bind(ABSENT)}`
  return leaf.values.length === 0 ? present : `${present} AND ${v}.value <> ALL(${params.bind(leaf.values)}::text[])`
}

/**
 * `FROM … WHERE …` of the users matching every leaf (at least one), one row each (a user has one
 * row per indexed attribute). The ranges (`in` leaves) are joined on user_id, so the planner can
 * merge them in key order; a filtered range (`not_in` leaves) that is not the first is tested
 * by probing for the values it excludes, {@link ABSENT} among them. The first leaf's alias is `v0`.
 */
function intersection(
  leaves: readonly ValueLeaf[],
  projectId: number,
  params: Params,
): { from: string; where: string } {
  const [first, ...rest] = [...leaves.filter((l) => l.op === 'in'), ...leaves.filter((l) => l.op === 'not_in')]
  let from = 'attribute_values v0'
  let where = leafTests(first as ValueLeaf, 'v0', projectId, params)
  rest.forEach((leaf, j) => {
    const v = `v${j + 1}`
    if (leaf.op === 'in') {
      from += ` JOIN attribute_values ${v} ON ${v}.user_id = v0.user_id AND ${leafTests(leaf, v, projectId, params)}`
    } else {
      where +=
        ` AND NOT EXISTS (SELECT 1 FROM attribute_values ${v} WHERE ${v}.${projectFilter(projectId)}` +
        ` AND ${v}.name = ${params.bind(leaf.field)} AND ${v}.value = ANY(${params.bind([ABSENT, ...leaf.values])}::text[])` +
        ` AND ${v}.user_id = v0.user_id)`
    }
  })
  return { from, where }
}

/**
 * The count of `c` as one scalar SQL expression drawing on the side table, or undefined when the
 * side table cannot narrow it (the caller then compiles it over `profiles`):
 * - a leaf on an attribute in `names` (`eq`, `in`, `not_exists`: ranges; `exists`, `neq`,
 *   `not_in`: the attribute's present values, filtered);
 * - `all` with at least one such child: their intersection, joined with `profiles` only when other
 *   children remain to be tested on the document;
 * - `any` whose every child is such a leaf or `all`: the union of their users;
 * - `not` of a countable condition: the project's users (the rows of any one indexed attribute) minus its count.
 */
function countExpression(
  c: Condition,
  projectId: number,
  names: ReadonlySet<string>,
  params: Params,
): string | undefined {
  const leaf = valueLeaf(c, names)
  if (leaf !== undefined) {
    return `(SELECT count(*) FROM attribute_values v0 WHERE ${leafTests(leaf, 'v0', projectId, params)})`
  }
  if (c.kind === 'not') {
    const inner = countExpression(c.of, projectId, names, params)
    if (inner === undefined) return undefined
    const any = [...names].sort()[0] as string
    const total = `(SELECT count(*) FROM attribute_values t WHERE t.${projectFilter(projectId)} AND t.name = ${params.bind(any)})`
    return `(${total} - ${inner})`
  }
  if (c.kind !== 'all' && c.kind !== 'any') return undefined
  // (A part the side table cannot narrow makes the whole undefined: no half-built SQL is used.)
  const set = userSet(c, projectId, names, params)
  return set === undefined ? undefined : `(SELECT count(*) FROM (${set}) s)`
}

/**
 * A query of the user ids matching `c` (each once), when the side table can narrow every part of
 * it: a leaf, an `all` with such a leaf (see {@link countExpression}), an `any` of those.
 */
function userSet(c: Condition, projectId: number, names: ReadonlySet<string>, params: Params): string | undefined {
  const leaf = valueLeaf(c, names)
  if (leaf !== undefined)
    return `SELECT v0.user_id FROM attribute_values v0 WHERE ${leafTests(leaf, 'v0', projectId, params)}`
  if (c.kind === 'any') {
    const sets = c.of.map((child) => userSet(child, projectId, names, params))
    return sets.length === 0 || sets.some((set) => set === undefined) ? undefined : sets.join(' UNION ')
  }
  if (c.kind !== 'all') return undefined
  const leaves: ValueLeaf[] = []
  const rest: Condition[] = []
  for (const child of conjuncts(c)) {
    const l = valueLeaf(child, names)
    if (l === undefined) rest.push(child)
    else leaves.push(l)
  }
  if (leaves.length === 0) return undefined
  const { from, where } = intersection(leaves, projectId, params)
  if (rest.length === 0) return `SELECT v0.user_id FROM ${from} WHERE ${where}`
  const residual = params.compile({ kind: 'all', of: rest }, 'p')
  return (
    `SELECT v0.user_id FROM ${from} JOIN profiles p ON p.${projectFilter(projectId)} AND p.user_id = v0.user_id ` +
    `WHERE ${where} AND ${residual}`
  )
}

/** The count query of `where` on the side table (see {@link countExpression}); undefined when it cannot help. */
export function attributeValuesCountSql(
  projectId: number,
  where: Condition,
  names: ReadonlySet<string>,
): CompiledSql | undefined {
  if (names.size === 0) return undefined
  const params = new Params()
  const expression = countExpression(where, projectId, names, params)
  return expression === undefined ? undefined : { sql: `SELECT (${expression})::bigint AS n`, params: params.list }
}

/**
 * The page query of `options.where` driven by the side table, or undefined when it cannot drive it:
 * - single ranges (`eq`, `not_exists`) among its top-level conjuncts are walked in user_id order
 *   and merge-joined, behind a fence (OFFSET 0) so that the planner keeps that order and stops
 *   after the page;
 * - else, a condition that is one `in` of 2 to {@link MAX_PAGE_RANGES} values takes the first page
 *   of each value's range and keeps the first of those (PostgreSQL 15 plans no ordered merge of
 *   ranges of one index);
 * every candidate's profile is then tested with the whole condition, so the page is exactly what
 * the query over `profiles` returns.
 */
export function attributeValuesScanSql(
  projectId: number,
  options: ScanOptions,
  names: ReadonlySet<string>,
): CompiledSql | undefined {
  if (options.where === undefined || names.size === 0) return undefined
  const children = conjuncts(options.where)
  const leaves = children.map((child) => valueLeaf(child, names))
  const singles = leaves.filter((l): l is ValueLeaf => l?.op === 'in' && l.values.length === 1)
  const only = children.length === 1 ? leaves[0] : undefined
  const params = new Params()
  const after = options.afterUserId === undefined ? undefined : params.bind(options.afterUserId)
  const afterTest = after === undefined ? '' : ` AND user_id > ${after}`
  const limit = params.bind(options.limit)
  let candidates: string
  if (singles.length > 0) {
    const from = singles
      .map((leaf, i) => {
        const range =
          `(SELECT user_id FROM attribute_values WHERE ${projectFilter(projectId)} AND name = ${params.bind(leaf.field)} ` +
          `AND value = ${params.bind(leaf.values[0])}${afterTest}) d${i}`
        return i === 0 ? range : `JOIN ${range} ON d${i}.user_id = d0.user_id`
      })
      .join(' ')
    candidates = `SELECT d0.user_id FROM ${from} ORDER BY d0.user_id OFFSET 0`
  } else if (only?.op === 'in' && only.values.length > 1 && only.values.length <= MAX_PAGE_RANGES) {
    candidates =
      `SELECT r.user_id FROM unnest(${params.bind(only.values)}::text[]) AS u(value) CROSS JOIN LATERAL (` +
      `SELECT user_id FROM attribute_values WHERE ${projectFilter(projectId)} AND name = ${params.bind(only.field)} ` +
      `AND value = u.value${afterTest} ORDER BY user_id LIMIT ${limit}) r ORDER BY r.user_id LIMIT ${limit}`
  } else {
    return undefined
  }
  const test = params.compile(options.where, 'p')
  return {
    sql:
      `SELECT p.user_id, p.attributes, p.created_at, p.updated_at FROM (${candidates}) d ` +
      `JOIN profiles p ON p.${projectFilter(projectId)} AND p.user_id = d.user_id ` +
      `WHERE ${test} ORDER BY d.user_id LIMIT ${limit}`,
    params: params.list,
  }
}
