/** The admin API client: same-origin cookie session, CSRF header on every non-GET, `{msg}` errors as ApiError. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfter: number | null = null,
  ) {
    super(message)
  }
}

let csrfToken: string | null = null
const signedOutListeners = new Set<() => void>()

export function setCsrfToken(token: string | null): void {
  csrfToken = token
}

/** Called when any request answers 401: the session expired or was signed out elsewhere. */
export function onSignedOut(listener: () => void): () => void {
  signedOutListeners.add(listener)
  return () => signedOutListeners.delete(listener)
}

export interface RequestOptions {
  readonly body?: unknown
  readonly signal?: AbortSignal
  /** Do not treat a 401 as "signed out" (the sign-in form itself). */
  readonly quiet401?: boolean
}

export async function request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET' && csrfToken !== null) headers['x-csrf-token'] = csrfToken
  let res: Response
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    throw new ApiError(0, 'The server did not answer: check that it is running and reload the page.')
  }
  if (res.ok) return res
  let msg = `${res.status} ${res.statusText}`
  try {
    const body = (await res.json()) as { msg?: unknown }
    if (typeof body.msg === 'string') msg = body.msg
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  const retryAfter = Number(res.headers.get('retry-after'))
  if (res.status === 401 && !options.quiet401) for (const listener of signedOutListeners) listener()
  throw new ApiError(res.status, msg, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null)
}

export async function api<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const res = await request(method, `/admin/api${path}`, options)
  if (res.status === 204) return undefined as T
  const text = await res.text()
  return (text === '' ? undefined : JSON.parse(text)) as T
}

export const enc = encodeURIComponent

export interface Session {
  password_set: boolean
  signed_in: boolean
  csrf_token: string | null
}

export interface Project {
  /** A number from this server; a string is accepted too. */
  id: string | number
  name: string
  created_at: string
  users: number
  last_upload_at: string | null
}

export type KeyState = 'active' | 'expiring' | 'revoked' | 'expired'

export interface ApiKey {
  id: string
  label: string
  scopes: string[]
  created_at: string
  last_used_at: string | null
  revoked_at: string | null
  expires_at: string | null
  state: KeyState
}

export interface LoggedRequest {
  id: number | string
  time: string | number
  method: string
  path: string
  key_id: string | null
  key_label: string | null
  request_id: string
  status: number
  duration_ms: number
  users_created: number | null
  users_updated: number | null
  error: string | null
  /** A "Send a test request" call: validated, nothing stored. */
  dry_run?: boolean
}

export interface KeyEvent {
  id: number | string
  key_id: string
  event: string
  at: string
  actor: string
  detail: string
}

export interface UserSummary {
  user_id: string
  created_at: string
  updated_at: string
}

export interface Profile extends UserSummary {
  attributes: Record<string, string>
}

export interface CatalogAttribute {
  name: string
  users: number
  distinct_values: number | null
  top_values: { value: string; users: number }[] | null
  /** Added by the date-operators work (#10): "string" | "number" | "date" | ...; absent before it. */
  type?: string
}

export interface Catalog {
  users: number
  attributes: CatalogAttribute[]
}

export interface SavedSegment {
  id: string
  name: string
  where: unknown
  count: number
  created_at: string
  updated_at: string
}
