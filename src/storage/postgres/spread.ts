import type pg from 'pg'
import { TraitbaseError } from '../../core/errors.js'
import type { ProfilePatch } from '../../core/upload.js'

/**
 * Projects spread over every worker of a Citus cluster (migration `0003_spread`, docs/scaling.md).
 *
 * A spread project's profiles live in `spread_profiles`, distributed by `dist_key`. The project has
 * B buckets; bucket b holds the users with `bucketOf(user_id, B) = b` under the key
 * `projects.spread_keys[b + 1]`, a value chosen when the project is spread so that the buckets sit on
 * shards of every worker, round robin. Uniqueness of (project, user) holds: the key is a function of
 * them. Lookups of one user go to one shard; counts and scans name every key of the project and run
 * on every worker in parallel; an upload is one distributed transaction run from the coordinator.
 */

/** Most buckets a project may have (a request touches at most min(users, buckets) shards). */
export const MAX_BUCKETS = 1024
/** Key candidates tried per project when choosing shards: project_id × this + i. */
const KEY_SPACE = 65_536
/** Times an upload is retried after a deadlock between overlapping uploads on two shards. */
const DEADLOCK_RETRIES = 5

/**
 * The bucket of a user: FNV-1a (32 bits) over the UTF-16 code units of the id, modulo the bucket
 * count. Part of the stored layout: it must never change.
 */
export function bucketOf(userId: string, buckets: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % buckets
}

/** The key (dist_key, as text) of a user's bucket. */
export function keyOf(keys: readonly string[], userId: string): string {
  return keys[bucketOf(userId, keys.length)] as string
}

export class SpreadRefusedError extends TraitbaseError {}

/**
 * Spreads an empty project over `buckets` buckets, in one transaction: with a SHARE lock on
 * `profiles` (Citus takes it on every node, so every running write of any project finishes first
 * and new ones wait the few milliseconds this takes) it checks that the project has no profile,
 * chooses one key per bucket on the workers in turn, and records them. The write functions check
 * `spread_keys` after writing (0003_spread), so no write can land in `profiles` for a spread project.
 * Moving the rows of a project that has some is refused (see docs/scaling.md).
 */
export async function spreadProject(
  client: pg.ClientBase,
  projectId: number,
  buckets: number,
): Promise<{ keys: string[]; workers: number[]; already: boolean }> {
  if (!Number.isInteger(buckets) || buckets < 2 || buckets > MAX_BUCKETS) {
    throw new SpreadRefusedError('BAD_REQUEST', `--buckets must be an integer from 2 to ${MAX_BUCKETS}`)
  }
  const { rows: citus } = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'citus'`)
  if (citus.length === 0) {
    throw new SpreadRefusedError(
      'BAD_REQUEST',
      'projects spread needs a Citus cluster (DATABASE_URL pointing at its coordinator): one PostgreSQL server has one machine to spread over',
    )
  }
  await client.query('BEGIN')
  try {
    const { rows } = await client.query<{ keys: string[] | null }>(
      'SELECT spread_keys::text[] AS keys FROM projects WHERE id = $1 FOR UPDATE',
      [projectId],
    )
    const row = rows[0]
    if (row === undefined) throw new SpreadRefusedError('NOT_FOUND', `No project with id ${projectId}`)
    if (row.keys !== null) {
      if (row.keys.length !== buckets) {
        throw new SpreadRefusedError(
          'CONFLICT',
          `The project is spread over ${row.keys.length} buckets already; changing the count is not supported`,
        )
      }
      await client.query('COMMIT')
      return { keys: row.keys, workers: await workersOf(client, row.keys), already: true }
    }
    await client.query('LOCK TABLE profiles IN SHARE MODE')
    const { rows: used } = await client.query('SELECT 1 FROM profiles WHERE project_id = $1 LIMIT 1', [projectId])
    if (used.length > 0) {
      throw new SpreadRefusedError(
        'CONFLICT',
        'The project has profiles already: spread it before its first upload (moving its rows is not supported)',
      )
    }
    // Its attribute indexes are on profiles, where a spread project has no rows.
    const { rows: indexed } = await client.query('SELECT 1 FROM attribute_indexes WHERE project_id = $1 LIMIT 1', [
      projectId,
    ])
    if (indexed.length > 0) {
      throw new SpreadRefusedError(
        'CONFLICT',
        'The project has attribute indexes (projects index): drop them, spread it, then index its attributes again',
      )
    }
    const keys = await chooseKeys(client, projectId, buckets)
    await client.query('UPDATE projects SET spread_keys = $2::bigint[] WHERE id = $1', [projectId, keys])
    await client.query('COMMIT')
    return { keys, workers: await workersOf(client, keys), already: false }
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** One key per bucket: bucket b on the b-th worker (round robin), each on a shard no other bucket uses while there are some. */
async function chooseKeys(client: pg.ClientBase, projectId: number, buckets: number): Promise<string[]> {
  const { rows } = await client.query<{ key: string; shard: string; port: number; host: string }>(
    `SELECT v::text AS key, s.shardid::text AS shard, n.nodeport AS port, n.nodename AS host
     FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS v
     CROSS JOIN LATERAL (SELECT get_shard_id_for_distribution_column('spread_profiles', v) AS shardid) s
     JOIN pg_dist_placement pl ON pl.shardid = s.shardid
     JOIN pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
     ORDER BY v`,
    [BigInt(projectId) * BigInt(KEY_SPACE), Math.min(KEY_SPACE, buckets * 64)],
  )
  const nodes = [...new Set(rows.map((r) => `${r.host}:${r.port}`))].sort()
  const usedShards = new Set<string>()
  const usedKeys = new Set<string>()
  const keys: string[] = []
  for (let b = 0; b < buckets; b++) {
    const node = nodes[b % nodes.length]
    const here = rows.filter((r) => `${r.host}:${r.port}` === node && !usedKeys.has(r.key))
    const pick = here.find((r) => !usedShards.has(r.shard)) ?? here[0]
    if (pick === undefined) throw new Error(`No spread key left for bucket ${b} of project ${projectId}`)
    usedShards.add(pick.shard)
    usedKeys.add(pick.key)
    keys.push(pick.key)
  }
  return keys
}

/** The worker ports holding the buckets, in bucket order. */
async function workersOf(client: pg.ClientBase, keys: readonly string[]): Promise<number[]> {
  const { rows } = await client.query<{ port: number }>(
    `SELECT n.nodeport AS port FROM unnest($1::bigint[]) WITH ORDINALITY AS k(v, i)
     JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('spread_profiles', k.v)
     JOIN pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
     ORDER BY k.i`,
    [keys],
  )
  return rows.map((r) => r.port)
}

/**
 * One upload of a spread project: one statement (Citus sends each shard its rows and commits on
 * every worker it touched with two-phase commit), then the user-count delta, in one transaction:
 * applied whole or not at all. Two uploads overlapping on users of two shards can deadlock (each
 * shard locks its rows in user_id order, but the shards run in parallel); Citus cancels one, and
 * since it was rolled back whole it is run again.
 */
export async function spreadUpload(
  pool: pg.Pool,
  projectId: number,
  keys: readonly string[],
  patches: readonly ProfilePatch[],
): Promise<{ created: number; total: number }> {
  const userIds: string[] = []
  const userKeys: string[] = []
  const byUser = Object.create(null) as Record<string, ProfilePatch['attributes']>
  for (const patch of patches) {
    userIds.push(patch.userId)
    userKeys.push(keyOf(keys, patch.userId))
    byUser[patch.userId] = patch.attributes
  }
  const document = JSON.stringify(byUser)
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      // The patches once more as a literal in ON CONFLICT: Citus sends that clause to each shard
      // without the parameter's type ("operator is not unique: unknown -> text").
      const { rows } = await client.query<{ is_new: boolean }>(
        `INSERT INTO spread_profiles AS p (dist_key, project_id, user_id, attributes, created_at, updated_at)
         SELECT t.k, $1, t.u, jsonb_strip_nulls($4::jsonb -> t.u), now(), now()
         FROM unnest($2::bigint[], $3::text[]) AS t(k, u)
         ORDER BY t.u COLLATE "C"
         ON CONFLICT (project_id, user_id, dist_key) DO UPDATE
         SET attributes = jsonb_strip_nulls(p.attributes || (${client.escapeLiteral(document)}::jsonb -> excluded.user_id)),
           updated_at = excluded.updated_at
         RETURNING (p.xmax = 0) AS is_new`,
        [projectId, userKeys, userIds, document],
      )
      let created = 0
      for (const r of rows) if (r.is_new) created++
      if (created > 0) {
        await client.query('INSERT INTO project_user_deltas (project_id, delta) VALUES ($1, $2)', [projectId, created])
      }
      await client.query('COMMIT')
      return { created, total: rows.length }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      if ((error as { code?: string }).code !== '40P01' || attempt >= DEADLOCK_RETRIES) throw error
    } finally {
      client.release()
    }
  }
}

/** Deletes one user of a spread project (one shard) and counts it, in one transaction. */
export async function spreadDelete(
  pool: pg.Pool,
  projectId: number,
  keys: readonly string[],
  userId: string,
): Promise<boolean> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const { rowCount } = await client.query(
      'DELETE FROM spread_profiles WHERE dist_key = $1 AND project_id = $2 AND user_id = $3',
      [keyOf(keys, userId), projectId, userId],
    )
    if (rowCount === 1) {
      await client.query('INSERT INTO project_user_deltas (project_id, delta) VALUES ($1, -1)', [projectId])
    }
    await client.query('COMMIT')
    return rowCount === 1
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}
