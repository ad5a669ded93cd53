/**
 * Shared fixture of the plan tests (sqlite-store.test.ts, postgres-store.test.ts): the query shapes
 * issue 7 times, on attributes with an index, and one on an attribute without.
 */
import type { Condition } from '../core/segment.js'
import type { Store } from './store.js'

export const INDEXED_SHAPES: readonly { readonly name: string; readonly where: Condition }[] = [
  { name: 'eq', where: { kind: 'text', field: 'plan', op: 'eq', value: 'pro' } },
  { name: 'in', where: { kind: 'set', field: 'language', op: 'in', values: ['ja', 'zh', 'ko'] } },
  {
    name: 'range',
    where: {
      kind: 'all',
      of: [
        { kind: 'numeric', field: 'ltv', op: 'gte', value: 100 },
        { kind: 'numeric', field: 'ltv', op: 'lt', value: 500 },
      ],
    },
  },
  { name: 'not_exists', where: { kind: 'presence', field: 'city', op: 'not_exists' } },
  {
    name: 'all of 2 eq',
    where: {
      kind: 'all',
      of: [
        { kind: 'text', field: 'plan', op: 'eq', value: 'free' },
        { kind: 'text', field: 'language', op: 'eq', value: 'ja' },
      ],
    },
  },
]

export const UNINDEXED_SHAPE: Condition = { kind: 'text', field: 'email', op: 'eq', value: 'a@example.com' }

/** The indexes the shapes need. */
export const SHAPE_INDEXES: readonly [string, 'text' | 'number'][] = [
  ['plan', 'text'],
  ['language', 'text'],
  ['ltv', 'number'],
  ['city', 'text'],
]

/**
 * `n` users with every attribute of the shapes, each shape matching about 1-2 % of them (so on a
 * few thousand rows an index is the cheaper plan, as it is for the shapes at 1M users).
 */
export function shapeProfiles(n: number): [string, Record<string, string>][] {
  const out: [string, Record<string, string>][] = []
  for (let i = 0; i < n; i++) {
    const a: Record<string, string> = {
      plan: i % 50 === 7 ? 'pro' : i % 100 === 3 ? 'free' : `p${i % 20}`,
      language: i % 100 < 3 ? (['ja', 'zh', 'ko'][i % 3] as string) : `l${i % 30}`,
      ltv: String(i % 50 === 1 ? 100 + (i % 400) : 500 + (i % 1000)),
      email: `u${i}@example.com`,
    }
    if (i % 50 !== 9) a['city'] = `c${i % 50}`
    out.push([`u${String(i).padStart(6, '0')}`, a])
  }
  return out
}

/** Uploads {@link shapeProfiles}(n) to the project in batches of 500, then builds {@link SHAPE_INDEXES}; returns the rows. */
export async function loadShapeProfiles(
  store: Store,
  projectId: number,
  n: number,
): Promise<[string, Record<string, string>][]> {
  const rows = shapeProfiles(n)
  for (let i = 0; i < rows.length; i += 500) {
    const patches = rows.slice(i, i + 500).map(([userId, a]) => ({
      userId,
      attributes: Object.assign(Object.create(null), a) as Record<string, string>,
    }))
    await store.applyUpload(projectId, { rows: patches.length, patches })
  }
  for (const [name, kind] of SHAPE_INDEXES) await store.createAttributeIndex(projectId, name, kind)
  return rows
}
