import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** Where PostgreSQL suites connect unless TEST_DATABASE_URL says otherwise (CI's local server). */
export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test'

export interface TestDatabase {
  /** Connection URL of the fresh database. */
  readonly url: string
  /** Drops the database, ending any connection still open to it. */
  drop(): Promise<void>
}

/**
 * Creates a fresh database `traitbase_test_<random>` on the server of TEST_DATABASE_URL (default
 * {@link DEFAULT_TEST_DATABASE_URL}), so every run starts empty and runs never see each other.
 * When the server does not answer, returns `{ skip: reason }` so the suite can skip and say why —
 * unless TRAITBASE_REQUIRE_PG=1 (CI), where it throws instead.
 */
export async function createTestDatabase(): Promise<TestDatabase | { skip: string }> {
  const baseUrl = process.env['TEST_DATABASE_URL'] || DEFAULT_TEST_DATABASE_URL
  const required = process.env['TRAITBASE_REQUIRE_PG'] === '1'
  const name = `traitbase_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5000 })
  try {
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
  } catch (error) {
    await admin.end().catch(() => undefined)
    const reason = `PostgreSQL at ${redact(baseUrl)} is not usable: ${(error as Error).message}`
    if (required) throw new Error(`${reason} (TRAITBASE_REQUIRE_PG=1, so this fails instead of skipping)`)
    return { skip: reason }
  }
  await admin.end()
  const url = new URL(baseUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: baseUrl })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable TEST_DATABASE_URL)'
  }
}
