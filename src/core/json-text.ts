/**
 * JSON.parse keeps the last of duplicate keys silently; a request that says `field_name` twice is
 * ambiguous, so we refuse it. Returns the first key repeated inside any one object, or undefined.
 *
 * Fast path for upload bodies: every object key is a plain string, so when the text has no
 * backslash and each of `keys` appears at most once, no key can repeat in the top-level object,
 * and nested objects are already refused by validation. Otherwise the full scan runs.
 */
export function findDuplicateKey(text: string, keys: readonly string[] = []): string | undefined {
  if (keys.length > 0 && !text.includes('\\') && !text.includes('{', text.indexOf('{') + 1)) {
    let repeated = false
    for (const k of keys) {
      const quoted = `"${k}"`
      const first = text.indexOf(quoted)
      if (first !== -1 && text.indexOf(quoted, first + 1) !== -1) repeated = true
    }
    if (!repeated) return undefined
  }
  return scanForDuplicateKey(text)
}

/** A single pass over JSON text that tracks the key set of every open object. Assumes valid JSON. */
function scanForDuplicateKey(text: string): string | undefined {
  // Each stack entry is the key set of an open object, or null for an open array.
  const stack: (Set<string> | null)[] = []
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (ch === 0x22 /* " */) {
      let j = i + 1
      let escaped = false
      while (j < text.length) {
        const c = text.charCodeAt(j)
        if (c === 0x5c /* \ */) {
          escaped = true
          j += 2
          continue
        }
        if (c === 0x22) break
        j++
      }
      const top = stack[stack.length - 1]
      if (expectKey && top) {
        const raw = text.slice(i + 1, j)
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : raw
        if (top.has(key)) return key
        top.add(key)
        expectKey = false
      }
      i = j
    } else if (ch === 0x7b /* { */) {
      stack.push(new Set())
      expectKey = true
    } else if (ch === 0x5b /* [ */) {
      stack.push(null)
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop()
    } else if (ch === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null
    }
  }
  return undefined
}
