/**
 * Segment conditions: the parsed form of `where` in `POST /v1/user/segments/query`, its parser and
 * the reference evaluator every other implementation (SQL, in-memory index) is tested against.
 */
import { MAX_FIELD_NAME, MAX_VALUE_CODE_POINTS, USER_ID_FIELD } from './limits.js'
import { err, ok, type Issue, type Result } from './result.js'
import { fitsCodePoints } from './text.js'
import { describeJsonValue, isJsonObject, objectBody, showJsonValue } from './json-value.js'
import {
  DATE_UNITS,
  inWindow,
  instantOf,
  parseDateValue,
  shiftInstant,
  windowOf,
  type DateUnit,
  type DateWindow,
} from './date.js'

export type TextOp = 'eq' | 'neq' | 'contains' | 'starts_with'
export type SetOp = 'in' | 'not_in'
export type NumericOp = 'gt' | 'gte' | 'lt' | 'lte'
export type PresenceOp = 'exists' | 'not_exists'
export type DateOp = 'before' | 'after' | 'between' | 'within_last' | 'more_than_ago' | 'within_next'
export type RelativeDateOp = 'within_last' | 'more_than_ago' | 'within_next'

/** The value of a date condition as parsed: a date (before/after), a range (between) or an amount of time. */
export type DateArgument =
  string | { readonly from: string; readonly to: string } | { readonly amount: number; readonly unit: DateUnit }

/**
 * A date leaf. `window` is absent as parsed and set by {@link resolveDates}, which applies the
 * moment of the query and the project's time zone; evaluators only read the window.
 */
export interface DateCondition {
  readonly kind: 'date'
  readonly field: string
  readonly op: DateOp
  readonly value: DateArgument
  readonly window?: DateWindow
}

export type Condition =
  | { readonly kind: 'all'; readonly of: readonly Condition[] }
  | { readonly kind: 'any'; readonly of: readonly Condition[] }
  | { readonly kind: 'not'; readonly of: Condition }
  | { readonly kind: 'text'; readonly field: string; readonly op: TextOp; readonly value: string }
  | { readonly kind: 'set'; readonly field: string; readonly op: SetOp; readonly values: readonly string[] }
  | { readonly kind: 'numeric'; readonly field: string; readonly op: NumericOp; readonly value: number }
  | { readonly kind: 'presence'; readonly field: string; readonly op: PresenceOp }
  | DateCondition

/** A validated query body. */
export interface SegmentQuery {
  readonly where: Condition
  /** Page size, 1..{@link MAX_SEGMENT_LIMIT}; default {@link DEFAULT_SEGMENT_LIMIT}. */
  readonly limit: number
  /** The opaque `next_cursor` of the previous page, as sent. */
  readonly cursor?: string
}

/** Deepest nesting of a condition: a bare leaf is depth 1, each `all`/`any`/`not` adds one. */
export const MAX_CONDITION_DEPTH = 10
/** Most leaf conditions (`field`/`op`) in one `where`. */
export const MAX_CONDITION_LEAVES = 100
/** Most values in one `in`/`not_in` list. */
export const MAX_SET_VALUES = 1000
/** Page size when `limit` is absent. */
export const DEFAULT_SEGMENT_LIMIT = 100
/** Largest page size. */
export const MAX_SEGMENT_LIMIT = 1000

const TEXT_OPS: ReadonlySet<string> = new Set<TextOp>(['eq', 'neq', 'contains', 'starts_with'])
const SET_OPS: ReadonlySet<string> = new Set<SetOp>(['in', 'not_in'])
const NUMERIC_OPS: ReadonlySet<string> = new Set<NumericOp>(['gt', 'gte', 'lt', 'lte'])
const PRESENCE_OPS: ReadonlySet<string> = new Set<PresenceOp>(['exists', 'not_exists'])
const DATE_OPS: ReadonlySet<string> = new Set<DateOp>([
  'before',
  'after',
  'between',
  'within_last',
  'more_than_ago',
  'within_next',
])
const ALL_OPS = [...TEXT_OPS, ...SET_OPS, ...NUMERIC_OPS, ...PRESENCE_OPS, ...DATE_OPS].join(', ')
/** Largest `amount` of a relative date condition (100,000 months is about 8,300 years). */
export const MAX_DATE_AMOUNT = 100_000
const DATE_SYNTAX =
  'a date "YYYY-MM-DD" or a date-time with Z or an offset, such as "2025-03-01T09:30:00Z" or "2025-03-01T18:30:00+09:00"'

/**
 * When a stored value counts as a number: the JSON number grammar (RFC 8259 §6) with an exponent
 * of at most two digits. The exponent cap keeps every such value of ≤ 128 characters inside the
 * normal float64 range, so JavaScript `Number`, SQLite (via `tb_number`) and PostgreSQL `::float8`
 * (which raises on overflow and underflow) all read it as the same double. `"+1"`, `"01"`, `"1."`,
 * `" 1"`, `"0x10"`, `"1e100"` and `"Infinity"` are not numbers.
 */
export const NUMBER_PATTERN = '^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]{1,2})?$'
const NUMBER_RE = new RegExp(NUMBER_PATTERN)

/** The number a stored value stands for under {@link NUMBER_PATTERN}, or undefined when it is not one. */
export function parseNumericText(text: string): number | undefined {
  return NUMBER_RE.test(text) ? Number(text) : undefined
}

interface ParseState {
  leaves: number
  readonly issues: Issue[]
}

/**
 * Checks a `where` condition. Paths in issues start at `path` (default `where`), e.g.
 * `where.all[2].op`. Never throws.
 */
export function parseCondition(input: unknown, path = 'where'): Result<Condition, Issue[]> {
  const state: ParseState = { leaves: 0, issues: [] }
  const cond = parseNode(input, path, 1, state)
  if (state.leaves > MAX_CONDITION_LEAVES) {
    state.issues.push({
      code: 'too_big',
      path,
      message: `has more than ${MAX_CONDITION_LEAVES} leaf conditions; the limit is ${MAX_CONDITION_LEAVES}`,
    })
  }
  if (state.issues.length > 0 || cond === undefined) return err(state.issues)
  return ok(cond)
}

function parseNode(input: unknown, path: string, depth: number, state: ParseState): Condition | undefined {
  const issues = state.issues
  if (depth > MAX_CONDITION_DEPTH) {
    issues.push({ code: 'too_big', path, message: `nesting is deeper than ${MAX_CONDITION_DEPTH} levels` })
    return undefined
  }
  if (!isJsonObject(input)) {
    issues.push({
      code: 'invalid_type',
      path,
      message: `must be a condition object ({"all":[…]}, {"any":[…]}, {"not":…} or {"field":…,"op":…}), got ${describeJsonValue(input)}`,
    })
    return undefined
  }
  const keys = Object.keys(input)
  const groupKeys = keys.filter((k) => k === 'all' || k === 'any' || k === 'not')
  if (groupKeys.length > 1 || (groupKeys.length === 1 && keys.length > 1)) {
    issues.push({
      code: 'invalid_value',
      path,
      message: `must have exactly one of "all", "any", "not" or "field"/"op"; got keys ${keys.map((k) => JSON.stringify(k)).join(', ')}`,
    })
    return undefined
  }
  const group = groupKeys[0]
  if (group === 'not') return parseNot(input['not'], `${path}.not`, depth, state)
  if (group === 'all' || group === 'any') {
    const list = input[group]
    const listPath = `${path}.${group}`
    if (!Array.isArray(list)) {
      issues.push({
        code: 'invalid_type',
        path: listPath,
        message: `must be an array of conditions, got ${describeJsonValue(list)}`,
      })
      return undefined
    }
    const of: Condition[] = []
    for (let i = 0; i < list.length; i++) {
      const c = parseNode(list[i] as unknown, `${listPath}[${i}]`, depth + 1, state)
      if (c !== undefined) of.push(c)
      if (state.leaves > MAX_CONDITION_LEAVES) return undefined
    }
    return { kind: group, of }
  }
  return parseLeaf(input, path, state)
}

function parseNot(input: unknown, path: string, depth: number, state: ParseState): Condition | undefined {
  const of = parseNode(input, path, depth + 1, state)
  return of === undefined ? undefined : { kind: 'not', of }
}

function parseLeaf(input: Record<string, unknown>, path: string, state: ParseState): Condition | undefined {
  const issues = state.issues
  state.leaves++
  const before = issues.length
  for (const k of Object.keys(input)) {
    if (k !== 'field' && k !== 'op' && k !== 'value') {
      issues.push({
        code: 'unknown_key',
        path: `${path}.${k}`,
        message: 'unknown key; a condition is {"field":…,"op":…,"value"?:…}, {"all":[…]}, {"any":[…]} or {"not":…}',
      })
    }
  }
  const field = input['field']
  if (field === undefined) {
    issues.push({ code: 'required', path: `${path}.field`, message: 'is required: the attribute name to test' })
  } else if (typeof field !== 'string') {
    issues.push({
      code: 'invalid_type',
      path: `${path}.field`,
      message: `must be a string, got ${describeJsonValue(field)}`,
    })
  } else if (field === '') {
    issues.push({ code: 'too_small', path: `${path}.field`, message: 'must not be empty' })
  } else if (!fitsCodePoints(field, MAX_FIELD_NAME)) {
    issues.push({ code: 'too_big', path: `${path}.field`, message: `is longer than ${MAX_FIELD_NAME} characters` })
  } else if (!field.isWellFormed()) {
    issues.push({ code: 'invalid_string', path: `${path}.field`, message: 'contains a lone UTF-16 surrogate' })
  } else if (field.includes('\0')) {
    issues.push({ code: 'invalid_string', path: `${path}.field`, message: NUL_MESSAGE })
  }
  const op = input['op']
  if (op === undefined) {
    issues.push({ code: 'required', path: `${path}.op`, message: `is required: one of ${ALL_OPS}` })
    return undefined
  }
  if (typeof op !== 'string') {
    issues.push({ code: 'invalid_type', path: `${path}.op`, message: `must be a string, one of ${ALL_OPS}` })
    return undefined
  }
  const hasValue = Object.hasOwn(input, 'value')
  const value = input['value']
  const valuePath = `${path}.value`
  if (PRESENCE_OPS.has(op)) {
    if (hasValue) issues.push({ code: 'unknown_key', path: valuePath, message: `"${op}" takes no value` })
    if (issues.length > before) return undefined
    return { kind: 'presence', field: field as string, op: op as PresenceOp }
  }
  if (!TEXT_OPS.has(op) && !SET_OPS.has(op) && !NUMERIC_OPS.has(op) && !DATE_OPS.has(op)) {
    issues.push({
      code: 'invalid_value',
      path: `${path}.op`,
      message: `unknown operator "${op}"; use one of ${ALL_OPS}`,
    })
    return undefined
  }
  if (!hasValue) {
    const what = SET_OPS.has(op)
      ? 'an array of strings'
      : NUMERIC_OPS.has(op)
        ? 'a number'
        : op === 'between'
          ? '{"from": date, "to": date}'
          : DATE_OPS.has(op) && op !== 'before' && op !== 'after'
            ? `{"amount": N, "unit": ${DATE_UNITS.map((u) => `"${u}"`).join('|')}}`
            : op === 'before' || op === 'after'
              ? DATE_SYNTAX
              : 'a string'
    issues.push({ code: 'required', path: valuePath, message: `is required for "${op}": ${what}` })
    return undefined
  }
  if (DATE_OPS.has(op)) {
    const arg = readDateArgument(op as DateOp, value, valuePath, issues)
    if (arg === undefined || issues.length > before) return undefined
    return { kind: 'date', field: field as string, op: op as DateOp, value: arg }
  }
  if (NUMERIC_OPS.has(op)) {
    const n = readNumber(value)
    if (n === undefined) {
      issues.push({
        code: 'invalid_type',
        path: valuePath,
        message: `"${op}" compares numbers: value must be a finite number, or a string in JSON number syntax such as "12.5", got ${showJsonValue(value)}`,
      })
      return undefined
    }
    if (issues.length > before) return undefined
    return { kind: 'numeric', field: field as string, op: op as NumericOp, value: n }
  }
  if (SET_OPS.has(op)) {
    if (!Array.isArray(value)) {
      issues.push({
        code: 'invalid_type',
        path: valuePath,
        message: `must be an array of strings, got ${describeJsonValue(value)}`,
      })
      return undefined
    }
    if (value.length === 0) {
      issues.push({ code: 'too_small', path: valuePath, message: 'must contain at least 1 value' })
      return undefined
    }
    if (value.length > MAX_SET_VALUES) {
      issues.push({
        code: 'too_big',
        path: valuePath,
        message: `has ${value.length} values; the limit is ${MAX_SET_VALUES}`,
      })
      return undefined
    }
    const values = new Set<string>()
    for (let i = 0; i < value.length; i++) {
      const s = readText(value[i] as unknown, `${valuePath}[${i}]`, issues)
      if (s !== undefined) values.add(s)
    }
    if (issues.length > before) return undefined
    return { kind: 'set', field: field as string, op: op as SetOp, values: [...values] }
  }
  const s = readText(value, valuePath, issues)
  if (s === undefined || issues.length > before) return undefined
  return { kind: 'text', field: field as string, op: op as TextOp, value: s }
}

function readDate(v: unknown, path: string, issues: Issue[]): string | undefined {
  if (typeof v === 'string' && parseDateValue(v) !== undefined) return v
  issues.push({
    code: typeof v === 'string' ? 'invalid_value' : 'invalid_type',
    path,
    message: `must be ${DATE_SYNTAX} (a real calendar day, hours 00-23), got ${showJsonValue(v)}`,
  })
  return undefined
}

function readDateArgument(op: DateOp, v: unknown, path: string, issues: Issue[]): DateArgument | undefined {
  if (op === 'before' || op === 'after') return readDate(v, path, issues)
  const keys = op === 'between' ? ['from', 'to'] : ['amount', 'unit']
  const shape = op === 'between' ? '{"from": date, "to": date}' : '{"amount": N, "unit": "days"}'
  if (!isJsonObject(v)) {
    issues.push({ code: 'invalid_type', path, message: `must be an object ${shape}, got ${describeJsonValue(v)}` })
    return undefined
  }
  const before = issues.length
  for (const k of Object.keys(v)) {
    if (!keys.includes(k))
      issues.push({ code: 'unknown_key', path: `${path}.${k}`, message: `unknown key; "${op}" takes ${shape}` })
  }
  for (const k of keys) {
    if (v[k] === undefined)
      issues.push({ code: 'required', path: `${path}.${k}`, message: `is required: "${op}" takes ${shape}` })
  }
  if (issues.length > before) return undefined
  if (op === 'between') {
    const from = readDate(v['from'], `${path}.from`, issues)
    const to = readDate(v['to'], `${path}.to`, issues)
    return from === undefined || to === undefined ? undefined : { from, to }
  }
  const amount = v['amount']
  const unit = v['unit']
  if (typeof amount !== 'number' || !Number.isInteger(amount) || amount < 1 || amount > MAX_DATE_AMOUNT) {
    issues.push({
      code: typeof amount === 'number' ? 'invalid_value' : 'invalid_type',
      path: `${path}.amount`,
      message: `must be an integer from 1 to ${MAX_DATE_AMOUNT}, got ${showJsonValue(amount)}`,
    })
  }
  if (typeof unit !== 'string' || !(DATE_UNITS as readonly string[]).includes(unit)) {
    issues.push({
      code: typeof unit === 'string' ? 'invalid_value' : 'invalid_type',
      path: `${path}.unit`,
      message: `must be one of ${DATE_UNITS.map((u) => `"${u}"`).join(', ')}, got ${showJsonValue(unit)}`,
    })
  }
  if (issues.length > before) return undefined
  return { amount: amount as number, unit: unit as DateUnit }
}

function readNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined
  if (typeof v === 'string') return parseNumericText(v)
  return undefined
}

/** Numbers and booleans become their JSON text, as uploads store them. */
function readText(v: unknown, path: string, issues: Issue[]): string | undefined {
  let s: string
  if (typeof v === 'string') s = v
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v)
  else {
    issues.push({
      code: 'invalid_type',
      path,
      message: `must be a string, number or boolean, got ${describeJsonValue(v)}`,
    })
    return undefined
  }
  if (s === '') {
    issues.push({
      code: 'too_small',
      path,
      message: 'must not be empty; stored values are never empty (use "exists" or "not_exists")',
    })
    return undefined
  }
  if (!fitsCodePoints(s, MAX_VALUE_CODE_POINTS)) {
    issues.push({ code: 'too_big', path, message: `is longer than ${MAX_VALUE_CODE_POINTS} characters` })
    return undefined
  }
  if (!s.isWellFormed()) {
    issues.push({ code: 'invalid_string', path, message: 'contains a lone UTF-16 surrogate' })
    return undefined
  }
  if (s.includes('\0')) {
    issues.push({ code: 'invalid_string', path, message: NUL_MESSAGE })
    return undefined
  }
  return s
}

/** Uploads refuse U+0000 (PostgreSQL text cannot hold it), so no name or value can contain it. */
const NUL_MESSAGE = 'contains U+0000 (NUL), which no attribute name or value can hold'

/**
 * Checks a query body `{"where": …, "limit"?: 1..1000 (default 100), "cursor"?: string}`.
 * The cursor is only checked to be a string here; decoding it is the caller's job.
 */
export function parseSegmentQuery(input: unknown): Result<SegmentQuery, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input, ['where', 'limit', 'cursor'], issues)
  if (body === undefined) return err(issues)
  let where: Condition | undefined
  if (body['where'] === undefined) {
    issues.push({ code: 'required', path: 'where', message: 'is required: the condition users must match' })
  } else {
    const parsed = parseCondition(body['where'])
    if (parsed.ok) where = parsed.value
    else issues.push(...parsed.error)
  }
  const limit = parseLimit(body['limit'], 'limit', issues)
  const cursor = body['cursor']
  if (cursor !== undefined && cursor !== null && typeof cursor !== 'string') {
    issues.push({
      code: 'invalid_type',
      path: 'cursor',
      message: `must be a string (a next_cursor), got ${describeJsonValue(cursor)}`,
    })
  }
  if (issues.length > 0 || where === undefined) return err(issues)
  return ok(typeof cursor === 'string' ? { where, limit, cursor } : { where, limit })
}

/**
 * Checks a page size: a JSON number, or also digits when `allowText` (query strings; default false).
 * Pushes an issue and returns the default when it is wrong.
 */
export function parseLimit(v: unknown, path: string, issues: Issue[], allowText = false): number {
  if (v === undefined || v === null) return DEFAULT_SEGMENT_LIMIT
  const n = allowText && typeof v === 'string' && /^[0-9]{1,7}$/.test(v) ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_SEGMENT_LIMIT) {
    issues.push({
      code: typeof n === 'number' ? 'invalid_value' : 'invalid_type',
      path,
      message: `must be an integer from 1 to ${MAX_SEGMENT_LIMIT}, got ${showJsonValue(v)}`,
    })
    return DEFAULT_SEGMENT_LIMIT
  }
  return n
}

/** The fields a condition reads, `user_id` included when tested. */
export function collectFields(cond: Condition, into: Set<string> = new Set()): Set<string> {
  if (cond.kind === 'all' || cond.kind === 'any') for (const c of cond.of) collectFields(c, into)
  else if (cond.kind === 'not') collectFields(cond.of, into)
  else into.add(cond.field)
  return into
}

/**
 * The reference semantics, on one user: `user_id` is a field every user has; other fields read
 * `attributes` (own keys only). A leaf on a field the user lacks is false, so `neq`/`not_in` match
 * only users having the attribute with another value, and `not` of anything includes users without it.
 */
export function evaluateCondition(
  cond: Condition,
  userId: string,
  attributes: Readonly<Record<string, string>>,
): boolean {
  switch (cond.kind) {
    case 'all':
      return cond.of.every((c) => evaluateCondition(c, userId, attributes))
    case 'any':
      return cond.of.some((c) => evaluateCondition(c, userId, attributes))
    case 'not':
      return !evaluateCondition(cond.of, userId, attributes)
    default:
      return evaluateLeaf(cond, readField(cond.field, userId, attributes))
  }
}

function readField(field: string, userId: string, attributes: Readonly<Record<string, string>>): string | undefined {
  if (field === USER_ID_FIELD) return userId
  return Object.hasOwn(attributes, field) ? attributes[field] : undefined
}

/** One leaf on a value (undefined = the user lacks the attribute). Shared by the in-memory index. */
export function evaluateLeaf(
  cond: Exclude<Condition, { kind: 'all' | 'any' | 'not' }>,
  value: string | undefined,
): boolean {
  if (cond.kind === 'presence') return (value !== undefined) === (cond.op === 'exists')
  if (value === undefined) return false
  switch (cond.kind) {
    case 'text':
      switch (cond.op) {
        case 'eq':
          return value === cond.value
        case 'neq':
          return value !== cond.value
        case 'contains':
          return value.includes(cond.value)
        case 'starts_with':
          return value.startsWith(cond.value)
      }
      break
    case 'set':
      return cond.values.includes(value) === (cond.op === 'in')
    case 'numeric': {
      const n = parseNumericText(value)
      if (n === undefined) return false
      return compareNumber(n, cond.op, cond.value)
    }
    case 'date':
      return inWindow(parseDateValue(value), windowOfLeaf(cond))
  }
  return false
}

/** What date conditions are evaluated against: one moment per request, and the project's zone. */
export interface DateContext {
  /** Milliseconds since the epoch: "now" for relative conditions. */
  readonly now: number
  /** IANA name: bare dates are local midnight there, and days/weeks/months step in its calendar. */
  readonly timeZone: string
}

/** The window of a resolved date leaf; a leaf that skipped {@link resolveDates} is a programming error. */
export function windowOfLeaf(cond: DateCondition): DateWindow {
  if (cond.window === undefined) throw new Error(`date condition on "${cond.field}" was not resolved (resolveDates)`)
  return cond.window
}

/** The window a date leaf stands for at `ctx` (see DateWindow; ranges are [from, to)). */
export function dateWindow(cond: DateCondition, ctx: DateContext): DateWindow {
  const { now, timeZone } = ctx
  const at = (text: string) => instantOf(parseDateValue(text)!, timeZone)
  const v = cond.value
  switch (cond.op) {
    case 'before':
      return windowOf(-Infinity, at(v as string), timeZone)
    case 'after':
      // Strictly after: instants are whole milliseconds.
      return windowOf(at(v as string) + 1, Infinity, timeZone)
    case 'between': {
      const r = v as { from: string; to: string }
      return windowOf(at(r.from), at(r.to), timeZone)
    }
    default: {
      const { amount, unit } = v as { amount: number; unit: DateUnit }
      // The past includes this very moment, the future starts after it.
      if (cond.op === 'within_last') return windowOf(shiftInstant(now, -amount, unit, timeZone), now + 1, timeZone)
      if (cond.op === 'more_than_ago') return windowOf(-Infinity, shiftInstant(now, -amount, unit, timeZone), timeZone)
      return windowOf(now + 1, shiftInstant(now, amount, unit, timeZone) + 1, timeZone)
    }
  }
}

/** `cond` with every date leaf's window set for `ctx`; other leaves are shared, not copied. */
export function resolveDates(cond: Condition, ctx: DateContext): Condition {
  switch (cond.kind) {
    case 'all':
    case 'any':
      return hasDates(cond) ? { kind: cond.kind, of: cond.of.map((c) => resolveDates(c, ctx)) } : cond
    case 'not':
      return hasDates(cond) ? { kind: 'not', of: resolveDates(cond.of, ctx) } : cond
    case 'date':
      return { ...cond, window: dateWindow(cond, ctx) }
    default:
      return cond
  }
}

/** True when the condition has a date leaf (so it needs the project's time zone). */
export function hasDates(cond: Condition): boolean {
  if (cond.kind === 'all' || cond.kind === 'any') return cond.of.some(hasDates)
  if (cond.kind === 'not') return hasDates(cond.of)
  return cond.kind === 'date'
}

/** `n op bound` for a numeric operator. */
export function compareNumber(n: number, op: NumericOp, bound: number): boolean {
  switch (op) {
    case 'gt':
      return n > bound
    case 'gte':
      return n >= bound
    case 'lt':
      return n < bound
    case 'lte':
      return n <= bound
  }
}
