/**
 * Database indexes on chosen attributes of a project (issue 7): what lets the database path answer
 * segment queries (count + first page, export pages) without scanning the project when the
 * in-memory index is not there. One partial expression index per (project, attribute, kind):
 *
 *   ON profiles (<expression>, user_id) WHERE project_id = <id>
 *
 * where <expression> is {@link attributeIndexExpression}, the exact text the compiled condition
 * uses (a planner only matches an expression index against the same expression), and `user_id`
 * second so an `eq` walks its matches already in page order. Only that project's rows are in it,
 * so other projects' uploads never pay for it. Shared by both stores; they differ in how they build.
 * On plain PostgreSQL a `text` index is instead a side table that counts read without the heap
 * (postgres/attribute-values.ts); its registry row and name are the same.
 */
import { createHash } from 'node:crypto'
import { TraitbaseError } from '../core/errors.js'
import { MAX_FIELD_NAME, USER_ID_FIELD } from '../core/limits.js'
import {
  ATTRIBUTE_INDEX_KINDS,
  attributeIndexExpression,
  type AttributeIndexKind,
  type SqlDialect,
} from './sql-dialect.js'

export type { AttributeIndexKind } from './sql-dialect.js'

/** An attribute index as the store lists it. */
export interface AttributeIndex {
  readonly name: string
  readonly kind: AttributeIndexKind
  /** The database index's name (`tb_attr_…`). */
  readonly indexName: string
  /** ISO-8601. */
  readonly createdAt: string
}

/** Throws a BAD_REQUEST TraitbaseError unless `name` could be an uploaded attribute's name. */
export function checkAttributeName(name: unknown): string {
  if (typeof name !== 'string' || name === '') {
    throw new TraitbaseError('BAD_REQUEST', 'An attribute name must be a non-empty string')
  }
  if ([...name].length > MAX_FIELD_NAME) {
    throw new TraitbaseError(
      'BAD_REQUEST',
      `Attribute name "${name.slice(0, 60)}…" is longer than ${MAX_FIELD_NAME} characters`,
    )
  }
  if (!name.isWellFormed() || name.includes('\0')) {
    throw new TraitbaseError('BAD_REQUEST', 'An attribute name must be valid Unicode without U+0000')
  }
  if (name === USER_ID_FIELD) {
    throw new TraitbaseError('BAD_REQUEST', `"${USER_ID_FIELD}" is the user id, not an attribute: it is always indexed`)
  }
  return name
}

export function checkIndexKind(kind: unknown): AttributeIndexKind {
  if (!ATTRIBUTE_INDEX_KINDS.includes(kind as AttributeIndexKind)) {
    throw new TraitbaseError('BAD_REQUEST', `An index kind is "text" or "number", got "${String(kind)}"`)
  }
  return kind as AttributeIndexKind
}

function checkProjectId(projectId: number): number {
  if (!Number.isSafeInteger(projectId) || projectId < 0) throw new Error(`Not a project id: ${projectId}`)
  return projectId
}

/**
 * The database index's name: the project, the kind and a digest of the attribute name (names may
 * hold any character, identifiers may not), short enough for PostgreSQL's 63 bytes.
 */
export function attributeIndexName(projectId: number, name: string, kind: AttributeIndexKind): string {
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 16)
  return `tb_attr_${checkProjectId(projectId)}_${kind === 'text' ? 't' : 'n'}_${digest}`
}

/** `project_id = <id>` as a literal: both the query and the partial index say it the same way. */
export function projectFilter(projectId: number): string {
  return `project_id = ${checkProjectId(projectId)}`
}

/**
 * The CREATE INDEX statement (without CONCURRENTLY) for one attribute index, on `profiles` or (a
 * project spread over a Citus cluster, see spread.ts) on `spread_profiles`.
 */
export function createAttributeIndexSql(
  dialect: SqlDialect,
  projectId: number,
  name: string,
  kind: AttributeIndexKind,
  concurrently = false,
  table: 'profiles' | 'spread_profiles' = 'profiles',
): string {
  const expression = attributeIndexExpression(dialect, name, kind, 'attributes')
  return (
    `CREATE INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${attributeIndexName(projectId, name, kind)} ` +
    `ON ${table} ((${expression}), user_id) WHERE ${projectFilter(projectId)}`
  )
}
