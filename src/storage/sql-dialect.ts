/**
 * Compiles a segment {@link Condition} into a boolean SQL expression over the profiles table
 * (`user_id` text column, `attrs` JSON object of string values). Shared by both backends; a
 * {@link SqlDialect} holds only what differs. Every value is a bound parameter.
 */
import { USER_ID_FIELD } from '../core/limits.js'
import { NUMBER_PATTERN, parseNumericText, type Condition } from '../core/segment.js'

/**
 * Name of the deterministic SQL function the SQLite store must register (see
 * {@link registerSqliteFunctions}): `tb_number(text) → REAL | NULL` — the value as a double when
 * it matches {@link NUMBER_PATTERN}, else NULL (NULL for NULL).
 */
export const SQLITE_NUMBER_FUNCTION = 'tb_number'

/** The part of a better-sqlite3 `Database` that {@link registerSqliteFunctions} needs. */
export interface SqliteFunctionHost {
  function(name: string, options: { deterministic: boolean }, fn: (value: unknown) => number | null): unknown
}

/** Registers {@link SQLITE_NUMBER_FUNCTION} on a better-sqlite3 database; call once per connection. */
export function registerSqliteFunctions(db: SqliteFunctionHost): void {
  db.function(SQLITE_NUMBER_FUNCTION, { deterministic: true }, toSqlNumber)
}

/** The semantics of `tb_number`: exported so tests pin them. */
export function toSqlNumber(value: unknown): number | null {
  return typeof value === 'string' ? (parseNumericText(value) ?? null) : null
}

/** What differs between SQLite and PostgreSQL when testing attributes. */
export interface SqlDialect {
  readonly name: 'sqlite' | 'postgres'
  /** The placeholder of the `index`-th parameter (1-based): `?` or `$index`. */
  placeholder(index: number): string
  /** Parameter value that names attribute `name` for {@link attribute}. */
  attributeKey(name: string): string
  /** Text of the attribute named by the parameter at `key`, NULL when absent. */
  attribute(attrs: string, key: string): string
  /** True when the attribute named by the parameter at `key` is present. */
  hasAttribute(attrs: string, key: string): string
  /** The double of text `expr` under NUMBER_PATTERN, NULL otherwise. May repeat `expr`. */
  toNumber(expr: string): string
  /** Placeholder cast for a numeric bound. */
  numberParam(p: string): string
  contains(expr: string, p: string): string
  startsWith(expr: string, p: string): string
  /** Parameter value for a list of strings used by {@link inList}. */
  listParam(values: readonly string[]): unknown
  inList(expr: string, p: string, negate: boolean): string
}

/** Quotes a key for a SQLite JSON path: `$."…"` with `"` and `\` escaped (SQLite ≥ 3.45). */
export function sqliteJsonPath(name: string): string {
  return `$."${name.replace(/["\\]/g, (m) => `\\${m}`)}"`
}

export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  placeholder: () => '?',
  attributeKey: sqliteJsonPath,
  attribute: (attrs, key) => `json_extract(${attrs}, ${key})`,
  hasAttribute: (attrs, key) => `(json_type(${attrs}, ${key}) IS NOT NULL)`,
  toNumber: (expr) => `${SQLITE_NUMBER_FUNCTION}(${expr})`,
  numberParam: (p) => p,
  contains: (expr, p) => `(instr(${expr}, ${p}) > 0)`,
  // instr is fine here: values are at most 128 characters, and `p` can only be bound once with `?`.
  startsWith: (expr, p) => `(instr(${expr}, ${p}) = 1)`,
  listParam: (values) => JSON.stringify(values),
  inList: (expr, p, negate) => `(${expr} ${negate ? 'NOT IN' : 'IN'} (SELECT value FROM json_each(${p})))`,
}

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  placeholder: (i) => `$${i}`,
  attributeKey: (name) => name,
  attribute: (attrs, key) => `(${attrs} ->> ${key})`,
  hasAttribute: (attrs, key) => `(${attrs} ? ${key})`,
  toNumber: (expr) => `(CASE WHEN ${expr} ~ '${NUMBER_PATTERN}' THEN (${expr})::float8 END)`,
  numberParam: (p) => `${p}::float8`,
  contains: (expr, p) => `(strpos(${expr}, ${p}) > 0)`,
  startsWith: (expr, p) => `starts_with(${expr}, ${p})`,
  listParam: (values) => [...values],
  inList: (expr, p, negate) => (negate ? `(${expr} <> ALL(${p}::text[]))` : `(${expr} = ANY(${p}::text[]))`),
}

/** Column names the compiled SQL refers to. Defaults: `user_id`, `attrs`. */
export interface ProfileColumns {
  readonly userId: string
  readonly attrs: string
}

const DEFAULT_COLUMNS: ProfileColumns = { userId: 'user_id', attrs: 'attrs' }

export interface CompiledSql {
  readonly sql: string
  readonly params: unknown[]
}

const NUMERIC_SQL = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const

/**
 * Compiles `cond` into a boolean SQL expression that is never NULL (so `NOT` keeps the
 * reference semantics). Placeholders are numbered from `firstParamIndex` (default 1) for PostgreSQL.
 */
export function compileCondition(
  cond: Condition,
  dialect: SqlDialect,
  firstParamIndex = 1,
  columns: ProfileColumns = DEFAULT_COLUMNS,
): CompiledSql {
  const params: unknown[] = []
  const bind = (v: unknown): string => {
    params.push(v)
    return dialect.placeholder(firstParamIndex + params.length - 1)
  }

  const compile = (c: Condition): string => {
    switch (c.kind) {
      case 'all':
        return c.of.length === 0 ? 'TRUE' : `(${c.of.map(compile).join(' AND ')})`
      case 'any':
        return c.of.length === 0 ? 'FALSE' : `(${c.of.map(compile).join(' OR ')})`
      case 'not':
        return `(NOT ${compile(c.of)})`
      default:
        break
    }
    const isUserId = c.field === USER_ID_FIELD
    if (c.kind === 'presence') {
      if (isUserId) return c.op === 'exists' ? 'TRUE' : 'FALSE'
      const has = dialect.hasAttribute(columns.attrs, bind(dialect.attributeKey(c.field)))
      return c.op === 'exists' ? has : `(NOT ${has})`
    }
    const value = isUserId ? columns.userId : dialect.attribute(columns.attrs, bind(dialect.attributeKey(c.field)))
    let test: string
    switch (c.kind) {
      case 'text':
        switch (c.op) {
          case 'eq':
            test = `${value} = ${bind(c.value)}`
            break
          case 'neq':
            test = `${value} <> ${bind(c.value)}`
            break
          case 'contains':
            test = dialect.contains(value, bind(c.value))
            break
          case 'starts_with':
            test = dialect.startsWith(value, bind(c.value))
            break
        }
        break
      case 'set':
        test = dialect.inList(value, bind(dialect.listParam(c.values)), c.op === 'not_in')
        break
      case 'numeric':
        test = `${dialect.toNumber(value)} ${NUMERIC_SQL[c.op]} ${dialect.numberParam(bind(c.value))}`
        break
    }
    // An absent attribute makes the comparison NULL; COALESCE turns that into false.
    return `COALESCE(${test}, FALSE)`
  }

  return { sql: compile(cond), params }
}
