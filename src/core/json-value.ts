import type { Issue } from './result.js'

/** How an unexpected JSON value is named in error messages: `null`, `an array`, `an object`, `a number` … */
export function describeJsonValue(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}

/** A JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Like {@link describeJsonValue}, but shows a scalar itself (`"abc"`, `1.5`, `true`), cut to 40
 * characters, for messages about one value.
 */
export function showJsonValue(v: unknown): string {
  if (typeof v === 'string') {
    const text = JSON.stringify(v)
    return text.length > 42 ? `${text.slice(0, 40)}…"` : text
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return describeJsonValue(v)
}

/**
 * A request body that must be a JSON object with no keys but `allowed`: returns it, or undefined
 * after pushing the `(body)` issue; pushes one issue per unknown key.
 */
export function objectBody(
  body: unknown,
  allowed: readonly string[],
  issues: Issue[],
): Record<string, unknown> | undefined {
  if (!isJsonObject(body)) {
    issues.push({
      code: 'invalid_type',
      path: '(body)',
      message: `must be a JSON object, got ${describeJsonValue(body)}`,
    })
    return undefined
  }
  const names = allowed.map((k) => `"${k}"`)
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      issues.push({ code: 'unknown_key', path: key, message: `unknown field; the body has ${list}` })
  }
  return body
}
