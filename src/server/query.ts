/**
 * The router's query-string parser: `a=1&a=2&b` → `{a: ['1', '2'], b: ''}` in a null-prototype
 * object, decoded strictly. A malformed escape (`%zz`, or bytes that are not UTF-8) is not read as
 * literal text, as the lenient default does: the result carries {@link MALFORMED_QUERY} and the
 * app answers 400, exactly as it does for a malformed path.
 */
export const MALFORMED_QUERY = Symbol('traitbase.malformedQuery')

export type ParsedQuery = Record<string, string | string[]> & { [MALFORMED_QUERY]?: true }

export function parseQueryString(text: string): ParsedQuery {
  const out = Object.create(null) as ParsedQuery
  if (text === '') return out
  for (const part of text.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const key = decode(eq === -1 ? part : part.slice(0, eq))
    const value = eq === -1 ? '' : decode(part.slice(eq + 1))
    if (key === undefined || value === undefined) return Object.assign(Object.create(null), { [MALFORMED_QUERY]: true })
    const seen = out[key]
    out[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value]
  }
  return out
}

/** Form decoding (`+` is a space); undefined for a malformed escape. */
function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}
