import fc from 'fast-check'
import type { Condition, NumericOp, PresenceOp, SetOp, TextOp } from '../core/segment.js'

/** Small pools so random conditions match often, with ids that sort differently by UTF-16 and by code point. */
export const FIELDS = ['a', 'b', 'n', 'user_id', 'x"y.z'] as const
export const VALUES = ['x', 'y', 'xy', 'yx', '1', '2.5', '-3', '10', '01', '1e5', ' 7', 'é', '😀', '\uE000'] as const
export const USER_IDS = ['u1', 'u10', 'u2', 'U3', 'é', '😀', '\uE000', 'a b', 'x', '10', '9'] as const

const field = fc.constantFrom(...FIELDS)
const value = fc.constantFrom(...VALUES, ...USER_IDS)

const leaf: fc.Arbitrary<Condition> = fc.oneof(
  fc.record({
    kind: fc.constant('text' as const),
    field,
    op: fc.constantFrom<TextOp>('eq', 'neq', 'contains', 'starts_with'),
    value,
  }),
  fc.record({
    kind: fc.constant('set' as const),
    field,
    op: fc.constantFrom<SetOp>('in', 'not_in'),
    values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant('numeric' as const),
    field,
    op: fc.constantFrom<NumericOp>('gt', 'gte', 'lt', 'lte'),
    value: fc.constantFrom(-3, 0, 1, 2.5, 7, 10, 100000),
  }),
  fc.record({ kind: fc.constant('presence' as const), field, op: fc.constantFrom<PresenceOp>('exists', 'not_exists') }),
)

/** Random conditions up to depth 4. */
export const conditionArbitrary: fc.Arbitrary<Condition> = fc.letrec<{ cond: Condition }>((tie) => ({
  cond: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.record({ kind: fc.constant('all' as const), of: fc.array(tie('cond'), { maxLength: 3 }) }),
    fc.record({ kind: fc.constant('any' as const), of: fc.array(tie('cond'), { maxLength: 3 }) }),
    fc.record({ kind: fc.constant('not' as const), of: tie('cond') }),
  ),
})).cond

/** Random profiles: distinct ids from {@link USER_IDS}, attributes from {@link FIELDS} (user_id excluded). */
export const profilesArbitrary: fc.Arbitrary<{ userId: string; attributes: Record<string, string> }[]> = fc
  .uniqueArray(
    fc.record({
      userId: fc.constantFrom(...USER_IDS),
      attributes: fc.dictionary(fc.constantFrom('a', 'b', 'n', 'x"y.z'), fc.constantFrom(...VALUES), { maxKeys: 4 }),
    }),
    { selector: (p) => p.userId, maxLength: USER_IDS.length },
  )
  .map((ps) => ps.map((p) => ({ userId: p.userId, attributes: Object.assign(Object.create(null), p.attributes) })))

/** JSON the parser accepts for a condition (the inverse of parseCondition). */
export function conditionToJson(cond: Condition): unknown {
  switch (cond.kind) {
    case 'all':
      return { all: cond.of.map(conditionToJson) }
    case 'any':
      return { any: cond.of.map(conditionToJson) }
    case 'not':
      return { not: conditionToJson(cond.of) }
    case 'set':
      return { field: cond.field, op: cond.op, value: cond.values }
    case 'presence':
      return { field: cond.field, op: cond.op }
    default:
      return { field: cond.field, op: cond.op, value: cond.value }
  }
}
