import type pg from 'pg'

/**
 * Where every table and function of the schema lives on a Citus cluster. Run by
 * `PostgresStore.migrate()` after the migrations, under the same advisory lock; does nothing on
 * plain PostgreSQL and nothing for objects Citus already knows, so running it again (every start)
 * only picks up tables added by later migrations.
 *
 * The rule, so new tables need no edit here:
 * - a table with a `project_id` column whose unique indexes all include `project_id` is
 *   distributed by `project_id`, co-located with `profiles`: one project's rows of every such table
 *   sit in one shard group on one worker, so per-project statements route to one node;
 * - any other table (no `project_id`, or a unique index without it, such as `api_keys.hash`, which
 *   Citus could not enforce across shards) becomes a reference table, copied to every node, so
 *   lookups by key and joins with it stay local;
 * - `traitbase_migrations` stays on the coordinator (only migrations read it);
 * - a table comment containing `citus:reference`, `citus:distributed` or `citus:local` overrides
 *   the rule; `citus:distribute-by=COLUMN` distributes the table by that column in a co-location
 *   group of its own (`spread_profiles`, by `dist_key`: see docs/scaling.md).
 * The functions of {@link DISTRIBUTED_FUNCTIONS} are distributed by their project argument: a call
 * outside a transaction block runs whole on the worker holding that project's shards.
 */
export const DISTRIBUTED_FUNCTIONS: readonly string[] = [
  'traitbase_upload(integer, text[], jsonb, boolean)',
  'traitbase_delete(integer, text, boolean)',
  'traitbase_prune_changes(integer, timestamptz, integer)',
  'traitbase_restart_changes(integer)',
]

/** The table every distributed table is co-located with. */
const ANCHOR = 'profiles'

export type Placement = 'distributed' | 'reference' | 'local'

/** What {@link applyCitusLayout} did; empty on plain PostgreSQL or when nothing was new. */
export interface LayoutChange {
  readonly name: string
  readonly placement: Placement | 'function'
}

export async function isCitus(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'citus'`)
  return rows.length > 0
}

export async function applyCitusLayout(client: pg.ClientBase): Promise<LayoutChange[]> {
  if (!(await isCitus(client))) return []
  // Runs inside the migration transaction: distributing tables and then functions in one
  // transaction needs Citus to use one connection per node (it refuses otherwise).
  await client.query(`SET LOCAL citus.multi_shard_modify_mode TO 'sequential'`)
  const changes: LayoutChange[] = []
  const { rows } = await client.query<{
    name: string
    has_project: boolean
    unique_ok: boolean
    comment: string | null
  }>(`
    SELECT c.relname AS name,
      EXISTS (SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attname = 'project_id' AND NOT a.attisdropped) AS has_project,
      NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                  AND a.attname = 'project_id' AND a.attnum = ANY (i.indkey::int2[]))) AS unique_ok,
      obj_description(c.oid, 'pg_class') AS comment
    FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND c.relname <> 'traitbase_migrations'
      AND NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = c.oid)
    ORDER BY c.relname = '${ANCHOR}' DESC, c.relname`)
  for (const row of rows) {
    const column = /citus:distribute-by=([a-z_][a-z0-9_]*)/.exec(row.comment ?? '')?.[1]
    if (column !== undefined) {
      await client.query(`SELECT create_distributed_table($1, $2, colocate_with => 'none')`, [row.name, column])
      changes.push({ name: row.name, placement: 'distributed' })
      continue
    }
    const placement = placementOf(row.has_project, row.unique_ok, row.comment)
    if (placement === 'local') continue
    if (placement === 'reference') {
      await client.query('SELECT create_reference_table($1)', [row.name])
    } else if (row.name === ANCHOR) {
      // A co-location group of its own: Citus would otherwise put it with every int-distributed table of
      // the database (other schemas' included), and isolating or moving a tenant would drag those along.
      await client.query(`SELECT create_distributed_table($1, 'project_id', colocate_with => 'none')`, [row.name])
    } else {
      await client.query(`SELECT create_distributed_table($1, 'project_id', colocate_with => $2)`, [row.name, ANCHOR])
    }
    changes.push({ name: row.name, placement })
  }
  for (const signature of DISTRIBUTED_FUNCTIONS) {
    // Skips functions a later migration has yet to create, and those already distributed.
    const { rows: pending } = await client.query(
      `SELECT 1 WHERE to_regprocedure($1) IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM pg_dist_object WHERE objid = to_regprocedure($1) AND distribution_argument_index IS NOT NULL)`,
      [signature],
    )
    if (pending.length === 0) continue
    await client.query(`SELECT create_distributed_function($1, 'p_project', colocate_with => $2)`, [signature, ANCHOR])
    changes.push({ name: signature, placement: 'function' })
  }
  return changes
}

export function placementOf(hasProject: boolean, uniqueOk: boolean, comment: string | null): Placement {
  const forced = /citus:(reference|distributed|local)\b/.exec(comment ?? '')
  if (forced !== null) return forced[1] as Placement
  return hasProject && uniqueOk ? 'distributed' : 'reference'
}
