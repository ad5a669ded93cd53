import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** Where PostgreSQL suites connect unless TEST_DATABASE_URL says otherwise (CI's local server). */
export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test'
/** The Citus coordinator of `../shared/citus/cluster.sh start` unless TEST_CITUS_URL says otherwise. */
export const DEFAULT_TEST_CITUS_URL = 'postgres://postgres@127.0.0.1:5433/postgres'

/** Which server a test database lives on: plain PostgreSQL, or the Citus coordinator. */
export type TestBackend = 'postgres' | 'citus'

export interface TestDatabase {
  /** Connection URL of the fresh database (for Citus: of the fresh schema, via `search_path`). */
  readonly url: string
  /** Drops the database (or schema), ending any connection still open to it. */
  drop(): Promise<void>
}

/**
 * A fresh, empty place to run one suite, so runs never see each other.
 *
 * - `postgres`: a database `traitbase_test_<random>` on the server of TEST_DATABASE_URL (default
 *   {@link DEFAULT_TEST_DATABASE_URL}). Skipped when the server does not answer, unless
 *   TRAITBASE_REQUIRE_PG=1 (CI), where it throws instead.
 * - `citus`: a schema `traitbase_test_<random>` in the coordinator's database of TEST_CITUS_URL
 *   (default {@link DEFAULT_TEST_CITUS_URL}); the URL selects it with `options=-c search_path=…`.
 *   A schema rather than a database because a Citus database needs the extension and the workers
 *   registered in it on every node (see `../shared/citus/README.md`). Skipped when the coordinator
 *   does not answer or has no citus extension, unless TRAITBASE_REQUIRE_CITUS=1 (CI).
 */
export async function createTestDatabase(backend: TestBackend = 'postgres'): Promise<TestDatabase | { skip: string }> {
  const citus = backend === 'citus'
  const baseUrl = citus
    ? process.env['TEST_CITUS_URL'] || DEFAULT_TEST_CITUS_URL
    : process.env['TEST_DATABASE_URL'] || DEFAULT_TEST_DATABASE_URL
  const requireVar = citus ? 'TRAITBASE_REQUIRE_CITUS' : 'TRAITBASE_REQUIRE_PG'
  const required = process.env[requireVar] === '1'
  const name = `traitbase_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5000 })
  try {
    await admin.connect()
    if (citus) {
      const { rows } = await admin.query(`SELECT 1 FROM pg_extension WHERE extname = 'citus'`)
      if (rows.length === 0) throw new Error('the citus extension is not installed in this database')
      await admin.query(`CREATE SCHEMA ${name}`)
    } else {
      await admin.query(`CREATE DATABASE ${name}`)
    }
  } catch (error) {
    await admin.end().catch(() => undefined)
    const what = citus ? 'Citus coordinator' : 'PostgreSQL'
    const reason = `${what} at ${redact(baseUrl)} is not usable: ${(error as Error).message}`
    if (required) throw new Error(`${reason} (${requireVar}=1, so this fails instead of skipping)`)
    return { skip: reason }
  }
  await admin.end()
  const url = new URL(baseUrl)
  if (citus) url.searchParams.set('options', `-c search_path=${name}`)
  else url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: baseUrl })
      await client.connect()
      try {
        await client.query(
          citus ? `DROP SCHEMA IF EXISTS ${name} CASCADE` : `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`,
        )
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
    return '(unparsable test database URL)'
  }
}
