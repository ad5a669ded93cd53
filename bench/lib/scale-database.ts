import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** A fresh place for one benchmark run: a database on PostgreSQL, a schema on a Citus coordinator. */
export interface ScaleDatabase {
  readonly url: string
  readonly citus: boolean
  drop(): Promise<void>
}

/**
 * On a server with the citus extension, a schema `traitbase_bench_<random>` (the URL selects it
 * with `options=-c search_path=…`; a new database would need the extension and the workers set up
 * on every node); on plain PostgreSQL a database of that name. Either way the migrations see an
 * empty place and, on Citus, distribute it.
 */
export async function createScaleDatabase(serverUrl: string): Promise<ScaleDatabase> {
  const name = `traitbase_bench_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
  await admin.connect()
  let citus: boolean
  try {
    citus = (await admin.query(`SELECT 1 FROM pg_extension WHERE extname = 'citus'`)).rows.length > 0
    await admin.query(citus ? `CREATE SCHEMA ${name}` : `CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  if (citus) url.searchParams.set('options', `-c search_path=${name}`)
  else url.pathname = `/${name}`
  return {
    url: url.toString(),
    citus,
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl })
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
