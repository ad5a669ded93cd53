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
