/**
 * Segment conditions: the parsed form of `where` in `POST /v1/user/segments/query`, its parser and
 * the reference evaluator every other implementation (SQL, in-memory index) is tested against.
 */
import { MAX_FIELD_NAME, MAX_VALUE_CODE_POINTS, USER_ID_FIELD } from './limits.js'
import { err, ok, type Issue, type Result } from './result.js'
import { fitsCodePoints } from './text.js'
import { describeJsonValue, isJsonObject, objectBody, showJsonValue } from './json-value.js'

export type TextOp = 'eq' | 'neq' | 'contains' | 'starts_with'
export type SetOp = 'in' | 'not_in'
export type NumericOp = 'gt' | 'gte' | 'lt' | 'lte'
export type PresenceOp = 'exists' | 'not_exists'

export type Condition =
  | { readonly kind: 'all'; readonly of: readonly Condition[] }
  | { readonly kind: 'any'; readonly of: readonly Condition[] }
  | { readonly kind: 'not'; readonly of: Condition }
  | { readonly kind: 'text'; readonly field: string; readonly op: TextOp; readonly value: string }
  | { readonly kind: 'set'; readonly field: string; readonly op: SetOp; readonly values: readonly string[] }
  | { readonly kind: 'numeric'; readonly field: string; readonly op: NumericOp; readonly value: number }
  | { readonly kind: 'presence'; readonly field: string; readonly op: PresenceOp }

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
const ALL_OPS = [...TEXT_OPS, ...SET_OPS, ...NUMERIC_OPS, ...PRESENCE_OPS].join(', ')

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
  if (!TEXT_OPS.has(op) && !SET_OPS.has(op) && !NUMERIC_OPS.has(op)) {
    issues.push({
      code: 'invalid_value',
      path: `${path}.op`,
      message: `unknown operator "${op}"; use one of ${ALL_OPS}`,
    })
    return undefined
  }
  if (!hasValue) {
    const what = SET_OPS.has(op) ? 'an array of strings' : NUMERIC_OPS.has(op) ? 'a number' : 'a string'
    issues.push({ code: 'required', path: valuePath, message: `is required for "${op}": ${what}` })
    return undefined
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
  }
  return false
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
