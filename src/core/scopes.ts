import { err, ok, type Result } from './result.js'

export const SCOPES = ['profiles:write', 'profiles:read'] as const
export type Scope = (typeof SCOPES)[number]

/** Parses `profiles:write,profiles:read` (whitespace tolerated, duplicates removed, order kept). */
export function parseScopes(csv: string): Result<Scope[], string> {
  const out: Scope[] = []
  for (const raw of csv.split(',')) {
    const s = raw.trim()
    if (s === '') continue
    if (!(SCOPES as readonly string[]).includes(s)) {
      return err(`unknown scope "${s}" (known: ${SCOPES.join(', ')})`)
    }
    if (!out.includes(s as Scope)) out.push(s as Scope)
  }
  if (out.length === 0) return err(`at least one scope is required (known: ${SCOPES.join(', ')})`)
  return ok(out)
}
