import { TraitbaseError } from '../../core/errors.js'
import { parseScopes, SCOPES } from '../../core/scopes.js'
import { fitsCodePoints } from '../../core/text.js'
import { generateApiKey } from '../../storage/api-keys.js'
import type { KeyRecord, Store } from '../../storage/store.js'
import { formatTable, type Output } from '../output.js'

/** Longest project name or key label accepted, in code points: enough for a name, short enough for a table. */
const MAX_NAME = 200

export interface KeyCommandContext {
  readonly store: Store
  readonly out: Output
}

export interface CreateKeyOptions extends KeyCommandContext {
  readonly project: string
  /** Free text shown by `keys list`. Default: empty. */
  readonly label?: string
  /** Comma-separated scopes. Default: every scope (`profiles:write,profiles:read`). */
  readonly scopes?: string
}

/**
 * Creates a key for the project, creating the project when it is new. The secret is printed once,
 * as the last line of stdout, so `… | tail -n 1` captures it; only its hash is stored.
 */
export async function createKey(options: CreateKeyOptions): Promise<KeyRecord> {
  const { store, out } = options
  const projectName = checkName('project name', options.project)
  const label = options.label === undefined ? '' : checkLabel(options.label)
  const scopes = parseScopes(options.scopes ?? SCOPES.join(','))
  if (!scopes.ok) throw new TraitbaseError('BAD_REQUEST', `--scopes: ${scopes.error}`)

  const project = await store.ensureProject(projectName)
  const { secret, hash } = generateApiKey()
  const key = await store.createKey({ projectId: project.id, label, scopes: scopes.value, hash })
  await store.addKeyEvent({ projectId: project.id, keyId: key.id, event: 'created', actor: 'cli' })
  out.out(`Created key ${key.id} for project "${project.name}" with scopes ${key.scopes.join(',')}.`)
  out.out('This is the only time the secret is shown; store it now:')
  out.out(secret)
  return key
}

export interface ListKeysOptions extends KeyCommandContext {
  readonly project: string
  /** Print a JSON array instead of a table. Default: false. */
  readonly json?: boolean
}

/** One key as `keys list --json` prints it: never the secret nor its hash. */
export interface KeyListing {
  readonly id: string
  readonly label: string
  readonly scopes: readonly string[]
  readonly created_at: string
  readonly last_used_at: string | null
  readonly revoked_at: string | null
  /** Set by rotation (console or admin API): the key stops working then. */
  readonly expires_at: string | null
}

/** Lists the project's keys, revoked ones included. Fails when the project does not exist. */
export async function listKeys(options: ListKeysOptions): Promise<KeyListing[]> {
  const { store, out } = options
  const projectName = checkName('project name', options.project)
  const project = await store.findProject(projectName)
  if (project === undefined) {
    throw new TraitbaseError('NOT_FOUND', `no project named "${projectName}" (create one with: traitbase keys create)`)
  }
  const listing = (await store.listKeys(project.id)).map(toListing)
  if (options.json === true) {
    out.out(JSON.stringify(listing, null, 2))
    return listing
  }
  if (listing.length === 0) {
    out.out(`Project "${project.name}" has no keys.`)
    return listing
  }
  const header = ['ID', 'LABEL', 'SCOPES', 'CREATED', 'LAST USED', 'REVOKED', 'EXPIRES']
  const rows = listing.map((k) => [
    k.id,
    k.label === '' ? '-' : k.label,
    k.scopes.join(','),
    k.created_at,
    k.last_used_at ?? 'never',
    k.revoked_at ?? '-',
    k.expires_at === null ? '-' : `${k.expires_at}${Date.parse(k.expires_at) <= Date.now() ? ' (expired)' : ''}`,
  ])
  for (const line of formatTable([header, ...rows])) out.out(line)
  return listing
}

export interface RevokeKeyOptions extends KeyCommandContext {
  readonly keyId: string
}

/** Revokes a key: the server refuses it from the next request on. Fails for an unknown or already revoked key. */
export async function revokeKey(options: RevokeKeyOptions): Promise<void> {
  const { store, out } = options
  const keyId = options.keyId.trim()
  if (keyId === '') throw new TraitbaseError('BAD_REQUEST', 'KEY_ID must not be empty')
  const key = await store.getKey(keyId)
  const revoked = await store.revokeKey(keyId)
  if (revoked && key !== undefined) {
    await store.addKeyEvent({ projectId: key.projectId, keyId, event: 'revoked', actor: 'cli' })
  }
  if (!revoked) throw new TraitbaseError('NOT_FOUND', `no active key with id "${keyId}" (unknown or already revoked)`)
  out.out(`Revoked key ${keyId}.`)
}

function toListing(key: KeyRecord): KeyListing {
  return {
    id: key.id,
    label: key.label,
    scopes: [...key.scopes],
    created_at: key.createdAt,
    last_used_at: key.lastUsedAt,
    revoked_at: key.revokedAt,
    expires_at: key.expiresAt,
  }
}

export function checkName(what: string, raw: string): string {
  const name = raw.trim()
  if (name === '') throw new TraitbaseError('BAD_REQUEST', `${what} must not be empty`)
  checkText(what, name)
  return name
}

function checkLabel(raw: string): string {
  const label = raw.trim()
  checkText('label', label)
  return label
}

function checkText(what: string, text: string): void {
  if (!fitsCodePoints(text, MAX_NAME)) {
    throw new TraitbaseError('BAD_REQUEST', `${what} is longer than ${MAX_NAME} characters`)
  }
  // Control characters would corrupt the table and terminal output.
  if (/\p{Cc}/u.test(text) || !text.isWellFormed()) {
    throw new TraitbaseError('BAD_REQUEST', `${what} must not contain control characters or lone surrogates`)
  }
}
