import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/** A database the benchmark made for itself and drops afterwards. */
export interface BenchDatabase {
  readonly url: string
  /** A new database with the same content (this one must have no open connections). */
  copy(suffix: string): Promise<BenchDatabase>
  drop(): Promise<void>
}

/**
 * A fresh, empty database: an SQLite file in a new temp folder, or `traitbase_bench_<random>_<suffix>`
 * on the PostgreSQL server of `postgresUrl`. Preloading once and copying lets the HTTP and direct
 * runs start from identical stores without paying for the preload twice.
 */
export async function createBenchDatabase(postgresUrl: string | undefined, suffix: string): Promise<BenchDatabase> {
  if (postgresUrl === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'traitbase-bench-'))
    return sqliteDatabase(dir, join(dir, `${suffix}.db`))
  }
  const name = `traitbase_bench_${randomBytes(4).toString('hex')}`
  if (await isCitus(postgresUrl)) return citusSchema(postgresUrl, name, `${name}_${suffix}`, undefined)
  return postgresDatabase(postgresUrl, name, `${name}_${suffix}`, undefined)
}

async function isCitus(serverUrl: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    return (await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'citus'`)).rows.length > 0
  } finally {
    await client.end()
  }
}

/**
 * On a Citus coordinator: a schema (a new database would need the extension and the workers set
 * up on every node). A copy is a new schema, migrated (so its tables are distributed like any
 * deployment's), filled table by table with INSERT … SELECT from the template.
 */
async function citusSchema(
  serverUrl: string,
  base: string,
  name: string,
  template: string | undefined,
): Promise<BenchDatabase> {
  await admin(serverUrl, `CREATE SCHEMA ${name}`)
  const url = new URL(serverUrl)
  url.searchParams.set('options', `-c search_path=${name}`)
  if (template !== undefined) {
    const { openStore } = await import('../../src/storage/open-store.js')
    await (await openStore(url.toString())).close()
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    try {
      const { rows } = await client.query<{ table: string }>(
        `SELECT c.relname AS table FROM pg_class c
         WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY 1`,
        [template],
      )
      for (const { table } of rows) {
        const exists = await client.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${name}.${table}`])
        if (exists.rows[0]?.ok !== true) {
          await client.query(`CREATE TABLE ${name}.${table} (LIKE ${template}.${table} INCLUDING ALL)`)
        } else if (table === 'traitbase_migrations') continue
        // OVERRIDING SYSTEM VALUE: identity columns (request_log, key_events) keep the template's ids.
        await client.query(`INSERT INTO ${name}.${table} OVERRIDING SYSTEM VALUE SELECT * FROM ${template}.${table}`)
      }
    } finally {
      await client.end()
    }
  }
  return {
    url: url.toString(),
    copy: (suffix) => citusSchema(serverUrl, base, `${base}_${suffix}`, name),
    drop: () => admin(serverUrl, `DROP SCHEMA IF EXISTS ${name} CASCADE`),
  }
}

function sqliteDatabase(dir: string, file: string): BenchDatabase {
  return {
    url: `sqlite:${file}`,
    copy: async (suffix) => {
      const target = join(dir, `${suffix}.db`)
      // A closed store has checkpointed its WAL, but copy it too in case it has not.
      for (const ext of ['', '-wal']) if (existsSync(file + ext)) copyFileSync(file + ext, target + ext)
      return sqliteDatabase(dir, target)
    },
    drop: async () => {
      for (const ext of ['', '-wal', '-shm']) rmSync(file + ext, { force: true })
      try {
        rmdirSync(dir)
      } catch {
        // Other copies still live in the folder; the last drop removes it.
      }
    },
  }
}

async function postgresDatabase(
  serverUrl: string,
  base: string,
  name: string,
  template: string | undefined,
): Promise<BenchDatabase> {
  // FILE_COPY checkpoints before copying, so every copy starts at the same point of the checkpoint cycle.
  await admin(
    serverUrl,
    template === undefined
      ? `CREATE DATABASE ${name}`
      : `CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY = FILE_COPY`,
  )
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    copy: (suffix) => postgresDatabase(serverUrl, base, `${base}_${suffix}`, name),
    drop: () => admin(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  }
}

async function admin(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}
