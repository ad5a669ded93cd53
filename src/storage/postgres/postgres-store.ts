import type { StoreOptions } from '../store.js'

/** Placeholder until the PostgreSQL store lands (step 2); openStore reports this clearly. */
export class PostgresStore {
  constructor(_url: string, _options: StoreOptions = {}) {
    throw new Error('The PostgreSQL store is not implemented yet')
  }
}
