/**
 * The smallest string greater than every string starting with `prefix`, in code point order (SQLite
 * BINARY and PostgreSQL COLLATE "C" both compare UTF-8 bytes, which is the same order): the last code
 * point incremented, skipping the surrogate range. Undefined when the prefix ends in U+10FFFF.
 * With it a prefix search is a range on the primary key instead of a scan.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = [...prefix]
  const last = points.pop()
  if (last === undefined) return undefined
  let code = (last.codePointAt(0) as number) + 1
  if (code === 0xd800) code = 0xe000
  if (code > 0x10ffff) return undefined
  return points.join('') + String.fromCodePoint(code)
}
