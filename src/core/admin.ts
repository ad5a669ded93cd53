import { describeJsonValue, objectBody } from './json-value.js'
import { err, ok, type Issue, type Result } from './result.js'
import { SCOPES, type Scope } from './scopes.js'
import { fitsCodePoints } from './text.js'

/** Longest project name or key label, in code points (the CLI's limit too). */
export const MAX_ADMIN_NAME = 200
/** Longest admin password accepted; far above any real one, low enough to bound the hashing work. */
export const MAX_PASSWORD = 1024
/** Shortest password `admin set-password` accepts. */
export const MIN_PASSWORD = 8
/** Longest grace period of a rotation: 30 days. */
export const MAX_GRACE_SECONDS = 30 * 24 * 3600

function text(body: Record<string, unknown>, key: string, issues: Issue[], required: boolean): string | undefined {
  const v = body[key]
  if (v === undefined) {
    if (required) issues.push({ code: 'required', path: key, message: 'is required' })
    return undefined
  }
  if (typeof v !== 'string') {
    issues.push({ code: 'invalid_type', path: key, message: `must be a string, got ${describeJsonValue(v)}` })
    return undefined
  }
  const s = v.trim()
  if (required && s === '') issues.push({ code: 'too_small', path: key, message: 'must not be empty' })
  else if (!fitsCodePoints(s, MAX_ADMIN_NAME)) {
    issues.push({ code: 'too_big', path: key, message: `is longer than ${MAX_ADMIN_NAME} characters` })
  } else if (/\p{Cc}/u.test(s) || !s.isWellFormed()) {
    issues.push({ code: 'invalid_string', path: key, message: 'must not contain control characters' })
  } else return s
  return undefined
}

/** `{"name": "…"}` for creating or renaming a project. */
export function parseProjectBody(input: unknown): Result<{ name: string }, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input, ['name'], issues)
  if (body === undefined) return err(issues)
  const name = text(body, 'name', issues, true)
  return issues.length > 0 || name === undefined ? err(issues) : ok({ name })
}

/**
 * `{"name"?: "…", "time_zone"?: "…"}` for changing a project: at least one. The time zone is checked
 * by the store (it knows the IANA names); here it only has to be a non-empty string.
 */
export function parseProjectPatch(input: unknown): Result<{ name?: string; timeZone?: string }, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input, ['name', 'time_zone'], issues)
  if (body === undefined) return err(issues)
  const name = text(body, 'name', issues, false)
  if (body['name'] !== undefined && name === '') {
    issues.push({ code: 'too_small', path: 'name', message: 'must not be empty' })
  }
  const zone = body['time_zone']
  if (zone !== undefined && (typeof zone !== 'string' || zone.trim() === '')) {
    issues.push({
      code: 'invalid_type',
      path: 'time_zone',
      message: `must be an IANA time zone name, got ${describeJsonValue(zone)}`,
    })
  }
  if (body['name'] === undefined && zone === undefined) {
    issues.push({ code: 'required', path: 'name', message: 'give "name", "time_zone" or both' })
  }
  if (issues.length > 0) return err(issues)
  return ok({
    ...(name === undefined ? {} : { name }),
    ...(typeof zone === 'string' ? { timeZone: zone.trim() } : {}),
  })
}

/** `{"label"?: "…", "scopes"?: ["profiles:write", …]}` for a new key; default label "", every scope. */
export function parseNewKeyBody(input: unknown): Result<{ label: string; scopes: Scope[] }, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input ?? {}, ['label', 'scopes'], issues)
  if (body === undefined) return err(issues)
  const label = text(body, 'label', issues, false) ?? ''
  let scopes: Scope[] = [...SCOPES]
  const raw = body['scopes']
  if (raw !== undefined) {
    if (!Array.isArray(raw) || raw.length === 0) {
      issues.push({
        code: 'invalid_type',
        path: 'scopes',
        message: `must be a non-empty array of ${SCOPES.join(', ')}`,
      })
    } else {
      scopes = []
      raw.forEach((s, i) => {
        if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s)) {
          issues.push({
            code: 'invalid_value',
            path: `scopes[${i}]`,
            message: `unknown scope ${typeof s === 'string' ? JSON.stringify(s) : describeJsonValue(s)}; known: ${SCOPES.join(', ')}`,
          })
        } else if (!scopes.includes(s as Scope)) scopes.push(s as Scope)
      })
    }
  }
  return issues.length > 0 ? err(issues) : ok({ label, scopes })
}

/** `{"grace_seconds": N}`: how long the old key keeps working; 0 stops it at once. */
export function parseRotateBody(input: unknown): Result<{ graceSeconds: number }, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input, ['grace_seconds'], issues)
  if (body === undefined) return err(issues)
  const g = body['grace_seconds']
  if (g === undefined) {
    issues.push({
      code: 'required',
      path: 'grace_seconds',
      message: 'is required, e.g. 3600, 86400 or 604800 (0 = now)',
    })
  } else if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g > MAX_GRACE_SECONDS) {
    issues.push({
      code: 'invalid_value',
      path: 'grace_seconds',
      message: `must be a whole number of seconds from 0 to ${MAX_GRACE_SECONDS} (30 days)`,
    })
  }
  return issues.length > 0 ? err(issues) : ok({ graceSeconds: g as number })
}

/** `{"password": "…"}` for signing in. */
export function parsePasswordBody(input: unknown): Result<{ password: string }, Issue[]> {
  const issues: Issue[] = []
  const body = objectBody(input, ['password'], issues)
  if (body === undefined) return err(issues)
  const p = body['password']
  if (p === undefined) issues.push({ code: 'required', path: 'password', message: 'is required' })
  else if (typeof p !== 'string') {
    issues.push({ code: 'invalid_type', path: 'password', message: `must be a string, got ${describeJsonValue(p)}` })
  } else if (p === '') issues.push({ code: 'too_small', path: 'password', message: 'must not be empty' })
  else if (p.length > MAX_PASSWORD) {
    issues.push({ code: 'too_big', path: 'password', message: `is longer than ${MAX_PASSWORD} characters` })
  }
  return issues.length > 0 ? err(issues) : ok({ password: p as string })
}

/** A new admin password (CLI): long enough to resist guessing through the throttled sign-in. */
export function checkNewPassword(p: string): Result<string, string> {
  if (p.length < MIN_PASSWORD) return err(`the password must have at least ${MIN_PASSWORD} characters`)
  if (p.length > MAX_PASSWORD) return err(`the password must have at most ${MAX_PASSWORD} characters`)
  if (/[\r\n\0]/.test(p)) return err('the password must not contain line breaks or NUL')
  return ok(p)
}

/** A query parameter given at most once, as text. */
function single(query: Record<string, unknown>, key: string, issues: Issue[]): string | undefined {
  const v = query[key]
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string') {
    issues.push({ code: 'invalid_type', path: key, message: 'must be given once' })
    return undefined
  }
  return v
}

function positiveInt(query: Record<string, unknown>, key: string, issues: Issue[], max: number): number | undefined {
  const v = single(query, key, issues)
  if (v === undefined) return undefined
  if (!/^[0-9]{1,15}$/.test(v) || Number(v) < 1 || Number(v) > max) {
    issues.push({ code: 'invalid_value', path: key, message: `must be a whole number from 1 to ${max}` })
    return undefined
  }
  return Number(v)
}

export interface RequestLogFilter {
  readonly statusClass?: number
  readonly keyId?: string
  readonly before?: number
  readonly after?: number
  readonly limit: number
}

/** Default and largest page of the request log. */
export const REQUEST_LOG_PAGE = { default: 100, max: 500 } as const

/** `?status=2xx|4xx|5xx&key_id=&before=&after=&limit=` of the request log. */
export function parseRequestLogQuery(query: Record<string, unknown>): Result<RequestLogFilter, Issue[]> {
  const issues: Issue[] = []
  const status = single(query, 'status', issues)
  let statusClass: number | undefined
  if (status !== undefined) {
    const m = /^([1-5])xx$/i.exec(status)
    if (m === null) issues.push({ code: 'invalid_value', path: 'status', message: 'must be 2xx, 4xx or 5xx' })
    else statusClass = Number(m[1])
  }
  const keyId = single(query, 'key_id', issues)
  const before = positiveInt(query, 'before', issues, Number.MAX_SAFE_INTEGER)
  const after = positiveInt(query, 'after', issues, Number.MAX_SAFE_INTEGER)
  const limit = positiveInt(query, 'limit', issues, REQUEST_LOG_PAGE.max) ?? REQUEST_LOG_PAGE.default
  if (issues.length > 0) return err(issues)
  return ok({
    limit,
    ...(statusClass === undefined ? {} : { statusClass }),
    ...(keyId === undefined ? {} : { keyId }),
    ...(before === undefined ? {} : { before }),
    ...(after === undefined ? {} : { after }),
  })
}

/** Default and largest page of the user list. */
export const USER_PAGE = { default: 50, max: 1000 } as const

/** `?prefix=&after=&limit=` of the user list. */
export function parseUserListQuery(
  query: Record<string, unknown>,
): Result<{ prefix?: string; after?: string; limit: number }, Issue[]> {
  const issues: Issue[] = []
  const prefix = single(query, 'prefix', issues)
  const after = single(query, 'after', issues)
  const limit = positiveInt(query, 'limit', issues, USER_PAGE.max) ?? USER_PAGE.default
  if (issues.length > 0) return err(issues)
  return ok({ limit, ...(prefix === undefined ? {} : { prefix }), ...(after === undefined ? {} : { after }) })
}
