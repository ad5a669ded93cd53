import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/** The setting that holds the console password's hash. */
export const ADMIN_PASSWORD_SETTING = 'admin_password'

// scrypt with N=2^15, r=8, p=1 (OWASP's minimum for scrypt): about 32 MiB and tens of ms per
// attempt, run on libuv's thread pool, so it never holds the event loop.
const PARAMS = { N: 32768, r: 8, p: 1 } as const
const KEY_BYTES = 32

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r }
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, options, (error, key) => (error ? reject(error) : resolve(key))),
  )
}

/** `scrypt$N$r$p$salt$hash` (base64url): self-describing, so the cost can rise later without a migration. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, PARAMS)
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join('$')
}

/** Constant-time check of `password` against a stored hash; false for anything malformed. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0) || N > 2 ** 20) return false
  const expected = Buffer.from(parts[5] as string, 'base64url')
  const key = await derive(password, Buffer.from(parts[4] as string, 'base64url'), { N, r, p })
  return key.length === expected.length && timingSafeEqual(key, expected)
}
