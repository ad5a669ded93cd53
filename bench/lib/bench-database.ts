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
  return postgresDatabase(postgresUrl, name, `${name}_${suffix}`, undefined)
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
