/** Length in Unicode code points; `s.length` counts UTF-16 code units. */
export function codePointLength(s: string): number {
  let n = s.length
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    // A high surrogate followed by a low one is one code point in two units.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--
        i++
      }
    }
  }
  return n
}

/** True when `s` has at most `max` code points; avoids counting in the common short case. */
export function fitsCodePoints(s: string, max: number): boolean {
  return s.length <= max || codePointLength(s) <= max
}

/**
 * Orders strings by Unicode code point, which is the byte order of their UTF-8 form: the order
 * SQLite's BINARY collation and PostgreSQL's "C" collation use, so `user_id` pages agree everywhere.
 * Plain `<` on JS strings compares UTF-16 units and puts U+E000..U+FFFF after astral characters.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (astral code points) sort above the rest of the BMP.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000
    }
    return x - y
  }
  return a.length - b.length
}

/**
 * A copy of `record` with its keys in code point order, null-prototype: what responses print, so
 * both backends answer byte for byte the same (PostgreSQL's jsonb reorders keys, SQLite keeps them).
 */
export function sortedByKey(record: Readonly<Record<string, string>>): Record<string, string> {
  const out = Object.create(null) as Record<string, string>
  for (const key of Object.keys(record).sort(compareCodePoints)) out[key] = record[key] as string
  return out
}
