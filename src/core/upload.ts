import { MAX_FIELD_NAME, MAX_FIELDS, MAX_USERS, MAX_VALUE_CODE_POINTS, USER_ID_FIELD } from './limits.js'
import { err, ok, type Issue, type Result } from './result.js'
import { compareCodePoints, fitsCodePoints } from './text.js'
import { describeJsonValue } from './json-value.js'

/**
 * What one user's row does to its profile: each named attribute gets the string value, or is
 * removed when the value is `null` (the spec's empty value `""`). Attributes not named are untouched.
 * A null-prototype record, so `__proto__` and `constructor` are ordinary attribute names.
 */
export type AttributePatch = Record<string, string | null>

export interface ProfilePatch {
  readonly userId: string
  readonly attributes: AttributePatch
}

/** A validated upload: one patch per distinct user, sorted by `user_id` in code point order. */
export interface UploadBatch {
  readonly patches: readonly ProfilePatch[]
  /** Rows in the request (repeated users counted each time). */
  readonly rows: number
}

/** Issues past this many are not listed; the first one is what the client sees in `msg`. */
const MAX_ISSUES = 100
const ALLOWED_KEYS = new Set(['field_name', 'values'])

/**
 * Checks a parsed `POST /v1/user/profiles` body against every rule and turns it into patches.
 * Numbers and booleans become their JSON text (a number its shortest form: `1.50` is `"1.5"`);
 * numbers that cannot be stored exactly are refused. `""` becomes `null` (clear). Repeated `user_id`
 * rows are merged in order, so the last value per attribute wins. Never throws.
 */
export function parseUploadBody(body: unknown): Result<UploadBatch, Issue[]> {
  const issues: Issue[] = []
  const add = (issue: Issue): boolean => {
    issues.push(issue)
    return issues.length >= MAX_ISSUES
  }

  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return err([
      { code: 'invalid_type', path: '(body)', message: `must be a JSON object, got ${describeJsonValue(body)}` },
    ])
  }
  for (const key of Object.keys(body)) {
    if (!ALLOWED_KEYS.has(key)) {
      const full = add({
        code: 'unknown_key',
        path: key,
        message: `unknown field; the body has only "field_name" and "values"`,
      })
      if (full) return err(issues)
    }
  }
  const { field_name: fields, values } = body as { field_name?: unknown; values?: unknown }

  const fieldsOk = checkFields(fields, add)
  if (values === undefined) {
    add({ code: 'required', path: 'values', message: 'is required: an array of rows, one per user' })
  } else if (!Array.isArray(values)) {
    add({ code: 'invalid_type', path: 'values', message: `must be an array of rows, got ${describeJsonValue(values)}` })
  } else if (values.length === 0) {
    add({ code: 'too_small', path: 'values', message: 'must contain at least 1 row' })
  } else if (values.length > MAX_USERS) {
    add({
      code: 'too_big',
      path: 'values',
      message: `has ${values.length} rows; the limit is ${MAX_USERS} users per request`,
    })
  }
  if (issues.length > 0 || !fieldsOk) return err(issues)

  const names = fields as string[]
  const rows = values as unknown[]
  const userIdIndex = names.indexOf(USER_ID_FIELD)
  const byUser = new Map<string, AttributePatch>()

  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]
    if (!Array.isArray(row)) {
      if (
        add({
          code: 'invalid_type',
          path: `values[${r}]`,
          message: `must be an array of ${names.length} values, got ${describeJsonValue(row)}`,
        })
      )
        break
      continue
    }
    if (row.length !== names.length) {
      if (
        add({
          code: 'invalid_value',
          path: `values[${r}]`,
          message: `has ${row.length} values but field_name has ${names.length}; each row needs one value per field`,
        })
      )
        break
      continue
    }
    const userId = row[userIdIndex] as unknown
    if (typeof userId !== 'string' || userId === '') {
      const got = userId === '' ? 'an empty string' : describeJsonValue(userId)
      if (
        add({
          code: 'invalid_value',
          path: `values[${r}][${userIdIndex}]`,
          message: `user_id must be a non-empty string, got ${got}`,
        })
      )
        break
      continue
    }
    let patch = byUser.get(userId)
    const fresh = patch === undefined
    if (patch === undefined) patch = Object.create(null) as AttributePatch
    let rowOk = true
    for (let c = 0; c < names.length; c++) {
      const v = row[c] as unknown
      let text: string
      if (typeof v === 'string') text = v
      else if (typeof v === 'boolean') text = String(v)
      else if (typeof v === 'number') {
        const problem = unstorableNumber(v)
        if (problem !== undefined) {
          rowOk = false
          if (add({ code: 'invalid_value', path: `values[${r}][${c}]`, message: `field "${names[c]}": ${problem}` }))
            break
          continue
        }
        text = String(v)
      } else {
        rowOk = false
        if (
          add({
            code: 'invalid_type',
            path: `values[${r}][${c}]`,
            message: `field "${names[c]}": must be a string, number or boolean, got ${describeJsonValue(v)}`,
          })
        )
          break
        continue
      }
      if (!fitsCodePoints(text, MAX_VALUE_CODE_POINTS)) {
        rowOk = false
        if (
          add({
            code: 'too_big',
            path: `values[${r}][${c}]`,
            message: `field "${names[c]}": value is longer than ${MAX_VALUE_CODE_POINTS} characters`,
          })
        )
          break
        continue
      }
      const bad = badCharacters(text)
      if (bad !== undefined) {
        rowOk = false
        if (add({ code: 'invalid_string', path: `values[${r}][${c}]`, message: `field "${names[c]}": value ${bad}` }))
          break
        continue
      }
      if (c !== userIdIndex) patch[names[c] as string] = text === '' ? null : text
    }
    if (issues.length >= MAX_ISSUES) break
    if (rowOk && fresh) byUser.set(userId, patch)
  }
  if (issues.length > 0) return err(issues)

  const patches: ProfilePatch[] = []
  for (const [userId, attributes] of byUser) patches.push({ userId, attributes })
  patches.sort((a, b) => compareCodePoints(a.userId, b.userId))
  return ok({ patches, rows: rows.length })
}

/**
 * Text both backends store faithfully: well-formed Unicode without U+0000 (PostgreSQL text cannot
 * hold NUL, and refusing it everywhere keeps SQLite and PostgreSQL behaving the same).
 */
function badCharacters(s: string): string | undefined {
  if (!s.isWellFormed()) return 'contains a lone UTF-16 surrogate, which is not valid Unicode'
  if (s.includes('\0')) return 'contains U+0000 (NUL), which cannot be stored'
  return undefined
}

function checkFields(fields: unknown, add: (issue: Issue) => boolean): boolean {
  if (fields === undefined) {
    add({
      code: 'required',
      path: 'field_name',
      message: `is required: an array of attribute names that includes "${USER_ID_FIELD}"`,
    })
    return false
  }
  if (!Array.isArray(fields)) {
    add({
      code: 'invalid_type',
      path: 'field_name',
      message: `must be an array of strings, got ${describeJsonValue(fields)}`,
    })
    return false
  }
  if (fields.length === 0) {
    add({ code: 'too_small', path: 'field_name', message: `must contain at least "${USER_ID_FIELD}"` })
    return false
  }
  if (fields.length > MAX_FIELDS) {
    add({
      code: 'too_big',
      path: 'field_name',
      message: `has ${fields.length} fields; the limit is ${MAX_FIELDS} (user_id included)`,
    })
    return false
  }
  let good = true
  const seen = new Set<string>()
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as unknown
    const path = `field_name[${i}]`
    if (typeof f !== 'string') {
      add({ code: 'invalid_type', path, message: `must be a string, got ${describeJsonValue(f)}` })
      good = false
    } else if (f === '') {
      add({ code: 'too_small', path, message: 'must not be empty' })
      good = false
    } else if (!fitsCodePoints(f, MAX_FIELD_NAME)) {
      add({ code: 'too_big', path, message: `"${f.slice(0, 60)}…" is longer than ${MAX_FIELD_NAME} characters` })
      good = false
    } else if (badCharacters(f) !== undefined) {
      add({ code: 'invalid_string', path, message: badCharacters(f) as string })
      good = false
    } else if (seen.has(f)) {
      add({ code: 'duplicate', path, message: `"${f}" appears more than once` })
      good = false
    } else {
      seen.add(f)
    }
  }
  if (good && !seen.has(USER_ID_FIELD)) {
    add({ code: 'required', path: 'field_name', message: `must include "${USER_ID_FIELD}"` })
    return false
  }
  return good
}

/**
 * Why a JSON number cannot be stored as its text, or undefined when it can. Past 2^53 an integer
 * has already lost digits when the body was parsed (12345678901234567890 reads as
 * 12345678901234567000), and a literal like 1e400 overflows to Infinity: storing either would
 * silently store something the client never sent.
 */
function unstorableNumber(n: number): string | undefined {
  if (Number.isNaN(n)) return 'NaN is not a JSON number'
  if (!Number.isFinite(n)) return 'number is too large to store (send it as a string)'
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) {
    return 'integer beyond ±9007199254740991 cannot be stored exactly (send it as a string)'
  }
  return undefined
}
