/** One schema step. Applied in order, once, each recorded in `traitbase_migrations`. */
export interface Migration {
  readonly id: string
  readonly sql: string
}
