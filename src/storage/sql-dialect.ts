/**
 * Compiles a segment {@link Condition} into a boolean SQL expression over the profiles table
 * (`user_id` text column, `attrs` JSON object of string values). Shared by both backends; a
 * {@link SqlDialect} holds only what differs. Every value is a bound parameter; attribute names are
 * SQL string literals (quoted by the dialect), so the expression a condition tests is exactly the
 * expression of an attribute index ({@link attributeIndexExpression}): a planner only uses an
 * expression index when the query has the same expression, constants included.
 */
import { USER_ID_FIELD } from '../core/limits.js'
import { inWindow, isEmptyWindow, parseDateValue } from '../core/date.js'
import { NUMBER_PATTERN, parseNumericText, windowOfLeaf, type Condition } from '../core/segment.js'

/**
 * Name of the deterministic SQL function the SQLite store must register (see
 * {@link registerSqliteFunctions}): `tb_number(text) → REAL | NULL` — the value as a double when
 * it matches {@link NUMBER_PATTERN}, else NULL (NULL for NULL).
 */
export const SQLITE_NUMBER_FUNCTION = 'tb_number'

/**
 * Name of the date test both stores provide: `tb_date_in(value text, from_ms, to_ms, from_day,
 * to_day) → boolean | NULL` — NULL for a NULL value; else true when the value is a date under the
 * date rule (core/date.ts) inside the window (a NULL bound is an open end), false otherwise.
 * SQLite: registered from JavaScript ({@link registerSqliteFunctions}); PostgreSQL: created by the
 * `0002_dates` migration in SQL, and pinned to the same answers by the date-rule tests.
 */
export const DATE_IN_FUNCTION = 'tb_date_in'

/** The part of a better-sqlite3 `Database` that {@link registerSqliteFunctions} needs. */
export interface SqliteFunctionHost {
  function(name: string, options: { deterministic: boolean }, fn: (...values: never[]) => number | null): unknown
}

/** Registers {@link SQLITE_NUMBER_FUNCTION} and {@link DATE_IN_FUNCTION} on a better-sqlite3 database; call once per connection. */
export function registerSqliteFunctions(db: SqliteFunctionHost): void {
  db.function(SQLITE_NUMBER_FUNCTION, { deterministic: true }, toSqlNumber)
  db.function(DATE_IN_FUNCTION, { deterministic: true }, toSqlDateIn)
}

/** The semantics of `tb_date_in` on SQLite (1/0/NULL): exported so tests pin them. */
export function toSqlDateIn(
  value: unknown,
  from: number | bigint | null,
  to: number | bigint | null,
  fromDay: number | bigint | null,
  toDay: number | bigint | null,
): number | null {
  if (value === null || value === undefined) return null
  if (typeof value !== 'string') return 0
  const window = {
    from: from === null ? -Infinity : Number(from),
    to: to === null ? Infinity : Number(to),
    fromDay: fromDay === null ? -Infinity : Number(fromDay),
    toDay: toDay === null ? Infinity : Number(toDay),
  }
  return inWindow(parseDateValue(value), window) ? 1 : 0
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
  /** SQL string literal that names attribute `name` for {@link attribute} (any name: quotes are escaped). */
  attributeKey(name: string): string
  /**
   * Text of the attribute named by the literal `key`, NULL when absent. Stored values are always
   * strings (never JSON null: an empty value removes the key), so NULL means exactly "absent".
   */
  attribute(attrs: string, key: string): string
  /** The double of text `expr` under NUMBER_PATTERN, NULL otherwise. May repeat `expr`. */
  toNumber(expr: string): string
  /** Placeholder cast for a numeric bound. */
  numberParam(p: string): string
  contains(expr: string, p: string): string
  startsWith(expr: string, p: string): string
  /** `expr` [NOT] IN `values`, binding them with `bind` (which returns the placeholder). */
  inList(expr: string, values: readonly string[], bind: (value: unknown) => string, negate: boolean): string
  /** {@link DATE_IN_FUNCTION} on text `expr` with four bound parameters (a NULL one is an open end). */
  dateIn(expr: string, from: string, to: string, fromDay: string, toDay: string): string
}

/** Quotes a key for a SQLite JSON path: `$."…"` with `"` and `\` escaped (SQLite ≥ 3.45). */
export function sqliteJsonPath(name: string): string {
  return `$."${name.replace(/["\\]/g, (m) => `\\${m}`)}"`
}

/** A SQL string literal of `text` for SQLite: `'` doubled, nothing else is special. */
export function sqliteStringLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`
}

/**
 * A SQL string literal of `text` for PostgreSQL. A text with a backslash is written as an escape
 * string (`E'…'`, backslashes doubled), which reads the same whatever `standard_conforming_strings` is.
 */
export function postgresStringLiteral(text: string): string {
  const quoted = text.replace(/'/g, "''")
  return text.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`
}

/** Longest `in` list SQLite gets as one placeholder per value (see `sqliteDialect.inList`). */
export const SQLITE_IN_PLACEHOLDERS = 64

export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  placeholder: () => '?',
  attributeKey: (name) => sqliteStringLiteral(sqliteJsonPath(name)),
  attribute: (attrs, key) => `json_extract(${attrs}, ${key})`,
  toNumber: (expr) => `${SQLITE_NUMBER_FUNCTION}(${expr})`,
  numberParam: (p) => p,
  contains: (expr, p) => `(instr(${expr}, ${p}) > 0)`,
  // instr is fine here: values are at most 128 characters, and `p` can only be bound once with `?`.
  startsWith: (expr, p) => `(instr(${expr}, ${p}) = 1)`,
  // Short lists get one placeholder per value: the planner then probes an attribute index once per
  // value, where `IN (SELECT value FROM json_each(?))` has no estimate and scans the project. Long
  // ones stay one JSON parameter (100 leaves × 1,000 values would pass SQLite's 32,766 parameters).
  inList: (expr, values, bind, negate) =>
    `(${expr} ${negate ? 'NOT IN' : 'IN'} (${
      values.length <= SQLITE_IN_PLACEHOLDERS
        ? values.map((v) => bind(v)).join(', ')
        : `SELECT value FROM json_each(${bind(JSON.stringify(values))})`
    }))`,
  dateIn: (expr, from, to, fromDay, toDay) => `${DATE_IN_FUNCTION}(${expr}, ${from}, ${to}, ${fromDay}, ${toDay})`,
}

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  placeholder: (i) => `$${i}`,
  attributeKey: postgresStringLiteral,
  attribute: (attrs, key) => `(${attrs} ->> ${key})`,
  toNumber: (expr) => `(CASE WHEN ${expr} ~ '${NUMBER_PATTERN}' THEN (${expr})::float8 END)`,
  numberParam: (p) => `${p}::float8`,
  contains: (expr, p) => `(strpos(${expr}, ${p}) > 0)`,
  startsWith: (expr, p) => `starts_with(${expr}, ${p})`,
  inList: (expr, values, bind, negate) => {
    const p = bind([...values])
    return negate ? `(${expr} <> ALL(${p}::text[]))` : `(${expr} = ANY(${p}::text[]))`
  },
  dateIn: (expr, from, to, fromDay, toDay) =>
    `${DATE_IN_FUNCTION}(${expr}, ${from}::bigint, ${to}::bigint, ${fromDay}::integer, ${toDay}::integer)`,
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

/** The kinds of attribute index: `text` serves eq, neq, in, not_in, exists and not_exists; `number` serves gt/gte/lt/lte. */
export type AttributeIndexKind = 'text' | 'number'

export const ATTRIBUTE_INDEX_KINDS: readonly AttributeIndexKind[] = ['text', 'number']

/**
 * The expression an attribute index of `kind` on attribute `name` keys on: exactly what
 * {@link compileCondition} writes for the attribute's conditions of that kind, so the planner
 * matches the two (the stores create their indexes from this function).
 */
export function attributeIndexExpression(
  dialect: SqlDialect,
  name: string,
  kind: AttributeIndexKind,
  attrs = DEFAULT_COLUMNS.attrs,
): string {
  const value = dialect.attribute(attrs, dialect.attributeKey(name))
  return kind === 'number' ? dialect.toNumber(value) : value
}

/**
 * Compiles `cond` into a boolean SQL expression for a WHERE clause. A leaf under no `NOT` is the
 * bare comparison (NULL for an absent attribute, which a WHERE clause drops like false), so an
 * index on its expression can serve it; under a `NOT`, leaves are wrapped in COALESCE(…, FALSE) so
 * the negation keeps the reference semantics. Placeholders are numbered from `firstParamIndex`
 * (default 1) for PostgreSQL.
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

  // `positive`: no NOT above, so NULL and FALSE select the same rows.
  const compile = (c: Condition, positive: boolean): string => {
    switch (c.kind) {
      case 'all':
        return c.of.length === 0 ? 'TRUE' : `(${c.of.map((x) => compile(x, positive)).join(' AND ')})`
      case 'any':
        return c.of.length === 0 ? 'FALSE' : `(${c.of.map((x) => compile(x, positive)).join(' OR ')})`
      case 'not':
        return `(NOT ${compile(c.of, false)})`
      default:
        break
    }
    const isUserId = c.field === USER_ID_FIELD
    if (c.kind === 'presence') {
      if (isUserId) return c.op === 'exists' ? 'TRUE' : 'FALSE'
      // IS [NOT] NULL is never NULL itself, and an index on the attribute's expression serves it.
      const value = dialect.attribute(columns.attrs, dialect.attributeKey(c.field))
      return `(${value} IS ${c.op === 'exists' ? 'NOT ' : ''}NULL)`
    }
    // Nothing can match an empty date window (e.g. between with to <= from): no function call per row.
    if (c.kind === 'date' && isEmptyWindow(windowOfLeaf(c))) return 'FALSE'
    const value = isUserId ? columns.userId : dialect.attribute(columns.attrs, dialect.attributeKey(c.field))
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
        test = dialect.inList(value, c.values, bind, c.op === 'not_in')
        break
      case 'numeric':
        test = `${dialect.toNumber(value)} ${NUMERIC_SQL[c.op]} ${dialect.numberParam(bind(c.value))}`
        break
      case 'date': {
        const w = windowOfLeaf(c)
        const end = (n: number) => bind(Number.isFinite(n) ? n : null)
        test = dialect.dateIn(value, end(w.from), end(w.to), end(w.fromDay), end(w.toDay))
        break
      }
    }
    // An absent attribute makes the comparison NULL; under a NOT, COALESCE turns that into false.
    return positive ? test : `COALESCE(${test}, FALSE)`
  }

  return { sql: compile(cond, true), params }
}
