/**
 * Splits a migration's SQL into its statements, each sent as its own command. Citus propagates some
 * DDL on distributed and reference tables (ADD CONSTRAINT, for one) to the workers as the *whole*
 * query text in a prepared statement, which fails as soon as that text holds two commands; one
 * statement per command avoids that. Knows what can hide a `;`: '…' strings (with ''), E'…'
 * strings (with \'), "…" identifiers, $tag$…$tag$ bodies, -- comments and (nested) block comments.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = []
  let start = 0
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql[i] as string
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(sql[i - 1] as string) && !/\w/.test(sql[i - 2] ?? ' ')
      i++
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2
        else if (sql[i] === "'") break
        else i++
      }
      i++
    } else if (c === '"') {
      i = sql.indexOf('"', i + 1)
      i = i < 0 ? n : i + 1
    } else if (c === '-' && sql[i + 1] === '-') {
      i = sql.indexOf('\n', i)
      if (i < 0) i = n
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))
      if (tag === null || (i > 0 && /\w/.test(sql[i - 1] as string))) i++
      else {
        const end = sql.indexOf(tag[0], i + tag[0].length)
        i = end < 0 ? n : end + tag[0].length
      }
    } else if (c === ';') {
      push(out, sql.slice(start, i))
      i++
      start = i
    } else i++
  }
  push(out, sql.slice(start))
  return out
}

function push(out: string[], statement: string): void {
  // A piece holding only comments and blanks is no statement.
  const bare = statement
    .replace(/--[^\n]*/g, '')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .trim()
  if (bare !== '') out.push(statement.trim())
}
