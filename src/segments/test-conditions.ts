import fc from 'fast-check'
import { DATE_UNITS } from '../core/date.js'
import {
  resolveDates,
  type Condition,
  type DateContext,
  type DateOp,
  type NumericOp,
  type PresenceOp,
  type SetOp,
  type TextOp,
} from '../core/segment.js'

/** Small pools so random conditions match often, with ids that sort differently by UTF-16 and by code point. */
export const FIELDS = ['a', 'b', 'n', 'user_id', 'x"y.z'] as const
export const VALUES = ['x', 'y', 'xy', 'yx', '1', '2.5', '-3', '10', '01', '1e5', ' 7', 'é', '😀', '\uE000'] as const
/**
 * The date rule at its edges: leap days, 24:00, ±14:00 offsets, fraction digits past milliseconds,
 * impossible days, unpadded fields, week and ordinal dates, lower-case designators, no offset.
 */
export const DATE_VALUES = [
  '2025-03-01',
  '2025-02-28',
  '2024-02-29',
  '2025-02-29',
  '2025-02-30',
  '0000-02-29',
  '2025-03-01T09:30:00Z',
  '2025-03-01T18:30:00+09:00',
  '2025-03-01T09:30Z',
  '2025-03-01T09:30:00.999Z',
  '2025-03-01T09:30:00.9999Z',
  '2025-03-01T09:30:00.5-14:00',
  '2025-03-01T00:00:00+14:00',
  '2025-03-01T09:30:00+14:30',
  '2025-03-01T24:00:00Z',
  '2025-03-01T23:59:60Z',
  '2025-3-1',
  '2025-W09-6',
  '2025-060',
  '20250301',
  '2025-03-01T09:30:00z',
  '2025-03-01t09:30:00Z',
  '2025-03-01 09:30:00Z',
  '2025-03-01T09:30:00',
  '2025-03-01T09:30:00,5Z',
  '9999-12-31T23:59:59.999-14:00',
] as const
/** Bounds of date conditions: bare dates (midnight in the zone) and instants around the values above. */
export const DATE_BOUNDS = [
  '2025-03-01',
  '2024-02-29',
  '2025-03-01T09:30:00Z',
  '2025-03-01T18:30:00.999+09:00',
  '2025-02-28T23:59:59.999-14:00',
  '2025-03-02T00:00+14:00',
] as const
/** Moments and zones date conditions are resolved for. */
export const DATE_CONTEXTS: readonly DateContext[] = [
  { now: Date.UTC(2025, 2, 1, 9, 30), timeZone: 'UTC' },
  { now: Date.UTC(2025, 2, 31, 12), timeZone: 'Asia/Tokyo' },
  { now: Date.UTC(2024, 1, 29, 23, 59, 59, 999), timeZone: 'America/New_York' },
  { now: Date.UTC(2025, 2, 1), timeZone: 'Pacific/Kiritimati' },
]

export const USER_IDS = ['u1', 'u10', 'u2', 'U3', 'é', '😀', '\uE000', 'a b', 'x', '10', '9'] as const

const field = fc.constantFrom(...FIELDS)
const value = fc.constantFrom(...VALUES, ...USER_IDS)
const bound = fc.constantFrom(...DATE_BOUNDS)

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
  fc.oneof(
    fc.record({
      kind: fc.constant('date' as const),
      field,
      op: fc.constantFrom<DateOp>('before', 'after'),
      value: bound,
    }),
    fc.record({
      kind: fc.constant('date' as const),
      field,
      op: fc.constant<DateOp>('between'),
      value: fc.record({ from: bound, to: bound }),
    }),
    fc.record({
      kind: fc.constant('date' as const),
      field,
      op: fc.constantFrom<DateOp>('within_last', 'more_than_ago', 'within_next'),
      value: fc.record({ amount: fc.constantFrom(1, 2, 9, 24, 30, 400), unit: fc.constantFrom(...DATE_UNITS) }),
    }),
  ),
)

/** Random conditions up to depth 4, with their date leaves resolved for one of {@link DATE_CONTEXTS}. */
export const conditionArbitrary: fc.Arbitrary<Condition> = fc
  .tuple(
    fc.letrec<{ cond: Condition }>((tie) => ({
      cond: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.record({ kind: fc.constant('all' as const), of: fc.array(tie('cond'), { maxLength: 3 }) }),
        fc.record({ kind: fc.constant('any' as const), of: fc.array(tie('cond'), { maxLength: 3 }) }),
        fc.record({ kind: fc.constant('not' as const), of: tie('cond') }),
      ),
    })).cond,
    fc.constantFrom(...DATE_CONTEXTS),
  )
  .map(([cond, ctx]) => resolveDates(cond, ctx))

/** Random profiles: distinct ids from {@link USER_IDS}, attributes from {@link FIELDS} (user_id excluded). */
export const profilesArbitrary: fc.Arbitrary<{ userId: string; attributes: Record<string, string> }[]> = fc
  .uniqueArray(
    fc.record({
      userId: fc.constantFrom(...USER_IDS),
      attributes: fc.dictionary(fc.constantFrom('a', 'b', 'n', 'x"y.z'), fc.constantFrom(...VALUES, ...DATE_VALUES), {
        maxKeys: 4,
      }),
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
