import { createHash, randomBytes, timingSafeEqual as cryptoTimingSafeEqual } from 'node:crypto'

/** Recognisable prefix of every traitbase secret, so leaked keys are easy to spot and scan for. */
export const API_KEY_PREFIX = 'tbk_'

// 32 random bytes are 256 bits of entropy; base64url without padding spells them in 43 characters.
const SECRET_BYTES = 32
const API_KEY_PATTERN = /^tbk_[A-Za-z0-9_-]{43}$/
const KEY_HASH_PATTERN = /^[0-9a-f]{64}$/

/** A freshly generated key: show `secret` once, store only `hash`. */
export interface GeneratedApiKey {
  readonly secret: string
  readonly hash: string
}

/** Generates a secret `tbk_` + 43 base64url characters (32 random bytes) and its SHA-256 hash. */
export function generateApiKey(): GeneratedApiKey {
  const secret = API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString('base64url')
  return { secret, hash: hashApiKey(secret) }
}

/**
 * SHA-256 of the secret, lowercase hex. A plain fast hash is enough: the secret has 256 bits of
 * entropy, so there is nothing for a slow password hash to protect against.
 */
export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}

/** True when `s` has the exact shape of a traitbase secret; checked before any database lookup. */
export function looksLikeApiKey(s: string): boolean {
  return API_KEY_PATTERN.test(s)
}

/** A public key id, `key_` + 16 hex characters: safe to log and show. */
export function newKeyId(): string {
  return 'key_' + randomBytes(8).toString('hex')
}

/** A public saved-segment id, `seg_` + 16 hex characters. */
export function newSegmentId(): string {
  return 'seg_' + randomBytes(8).toString('hex')
}

/**
 * Compares two hex hashes in constant time (for equal lengths), so the time taken tells nothing
 * about how many leading characters matched. Different lengths or non-hash input are simply unequal.
 */
export function timingSafeEqual(a: string, b: string): boolean {
  if (!KEY_HASH_PATTERN.test(a) || !KEY_HASH_PATTERN.test(b)) return false
  return cryptoTimingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'))
}

/** Recognisable prefix of admin API tokens: never accepted by /v1, and API keys never by /admin/api. */
export const ADMIN_TOKEN_PREFIX = 'tba_'
const ADMIN_TOKEN_PATTERN = /^tba_[A-Za-z0-9_-]{43}$/

/** An admin token `tba_` + 43 base64url characters (256 random bits) and its SHA-256 hash. */
export function generateAdminToken(): GeneratedApiKey {
  const secret = ADMIN_TOKEN_PREFIX + randomBytes(SECRET_BYTES).toString('base64url')
  return { secret, hash: hashApiKey(secret) }
}

export function looksLikeAdminToken(s: string): boolean {
  return ADMIN_TOKEN_PATTERN.test(s)
}

/** A public admin token id, `tok_` + 16 hex characters. */
export function newAdminTokenId(): string {
  return 'tok_' + randomBytes(8).toString('hex')
}
