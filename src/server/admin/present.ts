import type { KeyEvent, KeyRecord, Project, ProjectSummary, RequestLogRecord } from '../../storage/store.js'

/** A key's state for people: `expiring` is a rotated key still inside its grace period. */
export type KeyState = 'active' | 'expiring' | 'revoked' | 'expired'

export function keyState(key: KeyRecord, now: number): KeyState {
  if (key.revokedAt !== null) return 'revoked'
  if (key.expiresAt === null) return 'active'
  return Date.parse(key.expiresAt) <= now ? 'expired' : 'expiring'
}

export function presentKey(key: KeyRecord, now: number) {
  return {
    id: key.id,
    label: key.label,
    scopes: [...key.scopes],
    created_at: key.createdAt,
    last_used_at: key.lastUsedAt,
    revoked_at: key.revokedAt,
    expires_at: key.expiresAt,
    state: keyState(key, now),
  }
}

/** A project for the admin API; `time_zone` only where the answer is about one project. */
export function presentProject(p: Project | ProjectSummary, timeZone?: string) {
  return {
    id: p.id,
    name: p.name,
    created_at: p.createdAt,
    users: 'users' in p ? p.users : 0,
    last_upload_at: 'lastUploadAt' in p ? p.lastUploadAt : null,
    ...(timeZone === undefined ? {} : { time_zone: timeZone }),
  }
}

export function presentKeyEvent(e: KeyEvent) {
  return { id: e.id, key_id: e.keyId, event: e.event, at: e.at, actor: e.actor, detail: e.detail }
}

export function presentRequest(r: RequestLogRecord) {
  return {
    id: r.id,
    time: r.time,
    method: r.method,
    path: r.path,
    key_id: r.keyId,
    key_label: r.keyLabel,
    request_id: r.requestId,
    status: r.status,
    duration_ms: r.durationMs,
    users_created: r.usersCreated,
    users_updated: r.usersUpdated,
    error: r.error,
    dry_run: r.dryRun,
  }
}
