import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { checkNewPassword, MAX_ADMIN_NAME } from '../../core/admin.js'
import { TraitbaseError } from '../../core/errors.js'
import { fitsCodePoints } from '../../core/text.js'
import { ADMIN_PASSWORD_SETTING, hashPassword } from '../../storage/admin-password.js'
import { generateAdminToken } from '../../storage/api-keys.js'
import type { AdminToken, Store } from '../../storage/store.js'
import { formatTable, type Output } from '../output.js'

export interface AdminCommandContext {
  readonly store: Store
  readonly out: Output
}

/**
 * Stores the console password (scrypt hash) and signs every console session out. The password
 * comes from `readPassword` (a hidden prompt on a terminal, else stdin).
 */
export async function setAdminPassword(ctx: AdminCommandContext & { password: string }): Promise<void> {
  const checked = checkNewPassword(ctx.password)
  if (!checked.ok) throw new TraitbaseError('BAD_REQUEST', checked.error)
  await ctx.store.setSetting(ADMIN_PASSWORD_SETTING, await hashPassword(checked.value))
  // A new password must lock out whoever knew the old one.
  await ctx.store.deleteAllSessions()
  ctx.out.out('Admin password set; every console session was signed out. Sign in at /console.')
}

/** Creates an admin token; the secret is the last line of stdout, shown only this once. */
export async function createAdminToken(ctx: AdminCommandContext & { label?: string }): Promise<AdminToken> {
  const label = (ctx.label ?? '').trim()
  if (!fitsCodePoints(label, MAX_ADMIN_NAME) || /\p{Cc}/u.test(label)) {
    throw new TraitbaseError(
      'BAD_REQUEST',
      `--label must be at most ${MAX_ADMIN_NAME} characters, no control characters`,
    )
  }
  const { secret, hash } = generateAdminToken()
  const token = await ctx.store.createAdminToken({ label, hash })
  ctx.out.out(`Created admin token ${token.id}. It opens the whole admin API (/admin/api) of this server.`)
  ctx.out.out('This is the only time the secret is shown; store it now:')
  ctx.out.out(secret)
  return token
}

export async function listAdminTokens(ctx: AdminCommandContext & { json?: boolean }): Promise<void> {
  const tokens = (await ctx.store.listAdminTokens()).map((t) => ({
    id: t.id,
    label: t.label,
    created_at: t.createdAt,
    last_used_at: t.lastUsedAt,
    revoked_at: t.revokedAt,
  }))
  if (ctx.json === true) return ctx.out.out(JSON.stringify(tokens, null, 2))
  if (tokens.length === 0) return ctx.out.out('No admin tokens.')
  const rows = tokens.map((t) => [t.id, t.label || '-', t.created_at, t.last_used_at ?? 'never', t.revoked_at ?? '-'])
  for (const line of formatTable([['ID', 'LABEL', 'CREATED', 'LAST USED', 'REVOKED'], ...rows])) ctx.out.out(line)
}

export async function revokeAdminToken(ctx: AdminCommandContext & { id: string }): Promise<void> {
  if (!(await ctx.store.revokeAdminToken(ctx.id.trim()))) {
    throw new TraitbaseError('NOT_FOUND', `no active admin token with id "${ctx.id}" (unknown or already revoked)`)
  }
  ctx.out.out(`Revoked admin token ${ctx.id.trim()}.`)
}

/**
 * The new password: asked twice without echo on a terminal; otherwise all of stdin, without its
 * final line break (`echo "$PW" | traitbase admin set-password`).
 */
export async function readPassword(input: NodeJS.ReadStream, prompt: NodeJS.WriteStream): Promise<string> {
  if (!input.isTTY) {
    let text = ''
    input.setEncoding('utf8')
    for await (const chunk of input) text += chunk as string
    return text.replace(/\r?\n$/, '')
  }
  const ask = (question: string): Promise<string> =>
    new Promise((resolve) => {
      prompt.write(question)
      // Echo nothing the user types.
      const silent = new Writable({ write: (_chunk, _encoding, done) => done() })
      const rl = createInterface({ input, output: silent, terminal: true })
      rl.question('', (answer) => {
        rl.close()
        prompt.write('\n')
        resolve(answer)
      })
    })
  const first = await ask('New admin password: ')
  const second = await ask('Repeat it: ')
  if (first !== second) throw new TraitbaseError('BAD_REQUEST', 'the two passwords differ; nothing was changed')
  return first
}
