import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { Store, StoreOptions } from './store.js'

/** Where data goes when no URL is given: an SQLite file beside the working directory. */
export const DEFAULT_DATABASE_URL = 'sqlite:./data/traitbase.db'

/** The backend a database URL names; exported for tests and for messages. */
export type DatabaseTarget =
  { readonly kind: 'sqlite'; readonly filename: string } | { readonly kind: 'postgres'; readonly url: string }

/**
 * Reads a database URL: `sqlite:PATH` (relative to the working directory), `sqlite::memory:`,
 * `postgres://…` or `postgresql://…`. Anything else throws an error that says what is accepted.
 */
export function parseDatabaseUrl(databaseUrl: string): DatabaseTarget {
  if (databaseUrl.startsWith('sqlite:')) {
    const filename = databaseUrl.slice('sqlite:'.length)
    if (filename === '') throw new Error(`DATABASE_URL "sqlite:" needs a path, e.g. ${DEFAULT_DATABASE_URL}`)
    return { kind: 'sqlite', filename: filename === ':memory:' ? ':memory:' : resolve(filename) }
  }
  if (databaseUrl.startsWith('postgres://') || databaseUrl.startsWith('postgresql://')) {
    return { kind: 'postgres', url: databaseUrl }
  }
  const shown = databaseUrl.replace(/\/\/[^@/]*@/, '//***@')
  throw new Error(
    `Unsupported DATABASE_URL "${shown}": use sqlite:PATH, sqlite::memory:, postgres://… or postgresql://…`,
  )
}

/**
 * Opens the store a database URL names (default {@link DEFAULT_DATABASE_URL}) and migrates it.
 * The backend module is imported only when used, so an SQLite deployment never loads `pg`.
 * For an SQLite file, its folder is created.
 */
export async function openStore(
  databaseUrl: string = DEFAULT_DATABASE_URL,
  options: StoreOptions = {},
): Promise<Store> {
  const target = parseDatabaseUrl(databaseUrl)
  let store: Store
  if (target.kind === 'sqlite') {
    if (target.filename !== ':memory:') mkdirSync(dirname(target.filename), { recursive: true })
    const { SqliteStore } = await import('./sqlite/sqlite-store.js')
    store = new SqliteStore(target.filename, options)
  } else {
    const { PostgresStore } = await import('./postgres/postgres-store.js')
    store = new PostgresStore(target.url, options)
  }
  try {
    await store.migrate()
  } catch (error) {
    await store.close().catch(() => undefined)
    throw error
  }
  return store
}
