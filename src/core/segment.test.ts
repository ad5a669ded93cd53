import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DEFAULT_SEGMENT_LIMIT,
  MAX_CONDITION_DEPTH,
  MAX_CONDITION_LEAVES,
  evaluateCondition,
  parseCondition,
  parseNumericText,
  parseSegmentQuery,
  resolveDates,
  type Condition,
  type DateContext,
} from './segment.js'

function issuesOf(body: unknown): { path: string; code: string; message: string }[] {
  const r = parseSegmentQuery(body)
  assert.equal(r.ok, false, 'expected the body to be refused')
  return r.ok ? [] : r.error.map((i) => ({ path: i.path, code: i.code, message: i.message }))
}

function nest(depth: number): unknown {
  let c: unknown = { field: 'a', op: 'exists' }
  for (let i = 1; i < depth; i++) c = { not: c }
  return c
}

describe('parseSegmentQuery', () => {
  test('parses every leaf kind and the group forms', () => {
    const r = parseSegmentQuery({
      where: {
        all: [
          { field: 'plan', op: 'eq', value: 'pro' },
          { field: 'age', op: 'neq', value: 30 },
          { field: 'email', op: 'contains', value: '@x' },
          { field: 'email', op: 'starts_with', value: 'a' },
          { field: 'country', op: 'in', value: ['JP', 'US', 'JP'] },
          { field: 'country', op: 'not_in', value: ['FR', true] },
          { field: 'ltv', op: 'gt', value: 1.5 },
          { field: 'ltv', op: 'lte', value: '10' },
          { any: [{ field: 'vip', op: 'exists' }, { not: { field: 'vip', op: 'not_exists' } }] },
        ],
      },
      limit: 5,
      cursor: 'abc',
    })
    assert.ok(r.ok)
    assert.equal(r.value.limit, 5)
    assert.equal(r.value.cursor, 'abc')
    const expected: Condition = {
      kind: 'all',
      of: [
        { kind: 'text', field: 'plan', op: 'eq', value: 'pro' },
        { kind: 'text', field: 'age', op: 'neq', value: '30' },
        { kind: 'text', field: 'email', op: 'contains', value: '@x' },
        { kind: 'text', field: 'email', op: 'starts_with', value: 'a' },
        { kind: 'set', field: 'country', op: 'in', values: ['JP', 'US'] },
        { kind: 'set', field: 'country', op: 'not_in', values: ['FR', 'true'] },
        { kind: 'numeric', field: 'ltv', op: 'gt', value: 1.5 },
        { kind: 'numeric', field: 'ltv', op: 'lte', value: 10 },
        {
          kind: 'any',
          of: [
            { kind: 'presence', field: 'vip', op: 'exists' },
            { kind: 'not', of: { kind: 'presence', field: 'vip', op: 'not_exists' } },
          ],
        },
      ],
    }
    assert.deepEqual(r.value.where, expected)
  })

  test('limit defaults to 100 and must be 1..1000', () => {
    const r = parseSegmentQuery({ where: { all: [] } })
    assert.ok(r.ok)
    assert.equal(r.value.limit, DEFAULT_SEGMENT_LIMIT)
    assert.equal(r.value.cursor, undefined)
    for (const limit of [0, 1001, 1.5, '10', -1]) {
      assert.deepEqual(
        issuesOf({ where: { all: [] }, limit }).map((i) => i.path),
        ['limit'],
        `limit ${JSON.stringify(limit)}`,
      )
    }
    const max = parseSegmentQuery({ where: { all: [] }, limit: 1000 })
    assert.ok(max.ok && max.value.limit === 1000)
  })

  test('names the place of each problem', () => {
    const cases: [unknown, string, string][] = [
      [
        { all: [{ field: 'a', op: 'eq', value: 'x' }, {}, { field: 'a', op: 'like', value: 'x' }] },
        'where.all[2].op',
        'invalid_value',
      ],
      [{ any: [{ field: 'a', op: 'eq' }] }, 'where.any[0].value', 'required'],
      [{ not: { field: 'a', op: 'in', value: 'x' } }, 'where.not.value', 'invalid_type'],
      [{ field: 'a', op: 'in', value: [] }, 'where.value', 'too_small'],
      [{ field: 'a', op: 'in', value: ['x', null] }, 'where.value[1]', 'invalid_type'],
      [{ field: 'a', op: 'gt', value: 'ten' }, 'where.value', 'invalid_type'],
      [{ field: 'a', op: 'gt', value: null }, 'where.value', 'invalid_type'],
      [{ field: 'a', op: 'exists', value: 'x' }, 'where.value', 'unknown_key'],
      [{ field: 'a', op: 'eq', value: '' }, 'where.value', 'too_small'],
      [{ field: 'a', op: 'eq', value: 'x'.repeat(129) }, 'where.value', 'too_big'],
      [{ field: 'a', op: 'eq', value: '\ud800' }, 'where.value', 'invalid_string'],
      [{ field: 'a', op: 'eq', value: 'a\u0000b' }, 'where.value', 'invalid_string'],
      [{ field: 'a', op: 'contains', value: '\u0000' }, 'where.value', 'invalid_string'],
      [{ field: 'a', op: 'not_in', value: ['x', 'y\u0000'] }, 'where.value[1]', 'invalid_string'],
      [{ field: 't\u0000xt', op: 'exists' }, 'where.field', 'invalid_string'],
      [{ field: '', op: 'exists' }, 'where.field', 'too_small'],
      [{ field: 3, op: 'exists' }, 'where.field', 'invalid_type'],
      [{ op: 'exists' }, 'where.field', 'required'],
      [{ field: 'a' }, 'where.op', 'required'],
      [{ field: 'a', op: 7 }, 'where.op', 'invalid_type'],
      [{ field: 'a', op: 'exists', extra: 1 }, 'where.extra', 'unknown_key'],
      [{ all: {} }, 'where.all', 'invalid_type'],
      [{ all: [], any: [] }, 'where', 'invalid_value'],
      [{ not: { field: 'a', op: 'exists' }, field: 'a' }, 'where', 'invalid_value'],
      [[], 'where', 'invalid_type'],
      ['x', 'where', 'invalid_type'],
    ]
    for (const [where, path, code] of cases) {
      const issues = issuesOf({ where })
      assert.ok(
        issues.some((i) => i.path === path && i.code === code),
        `${JSON.stringify(where)} → ${JSON.stringify(issues)}`,
      )
      for (const i of issues) assert.ok(i.message.length > 5)
    }
  })

  test('messages show the offending value and say what would be accepted', () => {
    const message = (body: unknown) => issuesOf(body)[0]?.message ?? ''
    assert.equal(message(undefined), 'must be a JSON object, got nothing')
    assert.match(message({ where: { all: [] }, limit: 1.5 }), /from 1 to 1000, got 1\.5$/)
    assert.match(message({ where: { all: [] }, limit: 1001 }), /got 1001$/)
    assert.match(
      message({ where: { field: 'a', op: 'gt', value: ' 5' } }),
      /JSON number syntax such as "12\.5", got " 5"$/,
    )
    assert.match(message({ where: { field: 'a', op: 'eq', value: 'x\u0000' } }), /U\+0000/)
    const many = { any: Array.from({ length: 5000 }, () => ({ field: 'a', op: 'exists' })) }
    assert.match(message({ where: many }), /^has more than 100 leaf conditions; the limit is 100$/)
  })

  test('body level problems', () => {
    assert.deepEqual(
      issuesOf(null).map((i) => i.path),
      ['(body)'],
    )
    assert.deepEqual(
      issuesOf({}).map((i) => i.path),
      ['where'],
    )
    assert.deepEqual(
      issuesOf({ where: { all: [] }, cursor: 5, sort: 'x' }).map((i) => i.path),
      ['sort', 'cursor'],
    )
  })

  test(`depth up to ${MAX_CONDITION_DEPTH} is accepted, deeper is refused`, () => {
    assert.ok(parseCondition(nest(MAX_CONDITION_DEPTH)).ok)
    const r = parseCondition(nest(MAX_CONDITION_DEPTH + 1))
    assert.ok(!r.ok)
    assert.equal(r.error[0]?.code, 'too_big')
    assert.equal(r.error[0]?.path, `where${'.not'.repeat(MAX_CONDITION_DEPTH)}`)
  })

  test(`up to ${MAX_CONDITION_LEAVES} leaves are accepted, more are refused`, () => {
    const leaves = (n: number) => ({ any: Array.from({ length: n }, (_, i) => ({ field: `f${i}`, op: 'exists' })) })
    assert.ok(parseCondition(leaves(MAX_CONDITION_LEAVES)).ok)
    const r = parseCondition(leaves(MAX_CONDITION_LEAVES + 1))
    assert.ok(!r.ok)
    assert.ok(r.error.some((i) => i.code === 'too_big' && i.path === 'where'))
  })

  test('a custom root path prefixes issue paths', () => {
    const r = parseCondition({ all: [{ field: 'a', op: 'nope' }] }, 'segment.where')
    assert.ok(!r.ok)
    assert.equal(r.error[0]?.path, 'segment.where.all[0].op')
  })
})

describe('parseNumericText', () => {
  test('accepts the JSON number grammar with a two-digit exponent', () => {
    for (const [s, n] of [
      ['0', 0],
      ['-0', -0],
      ['42', 42],
      ['-3.25', -3.25],
      ['1e5', 1e5],
      ['1E+05', 1e5],
      ['2.5e-10', 2.5e-10],
      ['9'.repeat(120) + 'e99', Number('9'.repeat(120) + 'e99')],
    ] as const) {
      assert.equal(parseNumericText(s), n, s)
    }
  })
  test('refuses everything else', () => {
    for (const s of ['', ' 1', '1 ', '+1', '01', '1.', '.5', '0x10', '1e100', '1e', 'Infinity', 'NaN', '1,5', '١']) {
      assert.equal(parseNumericText(s), undefined, JSON.stringify(s))
    }
  })
})

describe('evaluateCondition', () => {
  const attrs = Object.assign(Object.create(null) as Record<string, string>, {
    plan: 'pro',
    ltv: '12.5',
    name: 'Ann',
    ['__proto__']: 'p',
  })
  const leaf = (c: Condition) => evaluateCondition(c, 'u1', attrs)

  test('neq and not_in need the attribute; not includes users without it', () => {
    assert.equal(leaf({ kind: 'text', field: 'plan', op: 'neq', value: 'free' }), true)
    assert.equal(leaf({ kind: 'text', field: 'city', op: 'neq', value: 'x' }), false)
    assert.equal(leaf({ kind: 'set', field: 'city', op: 'not_in', values: ['x'] }), false)
    assert.equal(leaf({ kind: 'not', of: { kind: 'text', field: 'city', op: 'eq', value: 'x' } }), true)
    assert.equal(leaf({ kind: 'presence', field: 'city', op: 'not_exists' }), true)
    assert.equal(leaf({ kind: 'presence', field: '__proto__', op: 'exists' }), true)
    assert.equal(evaluateCondition({ kind: 'presence', field: 'toString', op: 'exists' }, 'u', {}), false)
  })

  test('text, set and numeric operators', () => {
    assert.equal(leaf({ kind: 'text', field: 'plan', op: 'eq', value: 'pro' }), true)
    assert.equal(leaf({ kind: 'text', field: 'plan', op: 'eq', value: 'Pro' }), false)
    assert.equal(leaf({ kind: 'text', field: 'name', op: 'contains', value: 'nn' }), true)
    assert.equal(leaf({ kind: 'text', field: 'name', op: 'starts_with', value: 'nn' }), false)
    assert.equal(leaf({ kind: 'set', field: 'plan', op: 'in', values: ['free', 'pro'] }), true)
    assert.equal(leaf({ kind: 'set', field: 'plan', op: 'not_in', values: ['free', 'pro'] }), false)
    assert.equal(leaf({ kind: 'numeric', field: 'ltv', op: 'gt', value: 12 }), true)
    assert.equal(leaf({ kind: 'numeric', field: 'ltv', op: 'gte', value: 12.5 }), true)
    assert.equal(leaf({ kind: 'numeric', field: 'ltv', op: 'lt', value: 12.5 }), false)
    assert.equal(leaf({ kind: 'numeric', field: 'ltv', op: 'lte', value: 12.5 }), true)
    assert.equal(leaf({ kind: 'numeric', field: 'plan', op: 'lt', value: 1e9 }), false)
    assert.equal(leaf({ kind: 'numeric', field: 'plan', op: 'gt', value: -1e9 }), false)
  })

  test('user_id is a field every user has', () => {
    assert.equal(leaf({ kind: 'text', field: 'user_id', op: 'eq', value: 'u1' }), true)
    assert.equal(leaf({ kind: 'presence', field: 'user_id', op: 'not_exists' }), false)
    assert.equal(evaluateCondition({ kind: 'numeric', field: 'user_id', op: 'gt', value: 5 }, '10', {}), true)
  })

  test('empty all is true, empty any is false', () => {
    assert.equal(leaf({ kind: 'all', of: [] }), true)
    assert.equal(leaf({ kind: 'any', of: [] }), false)
  })
})

describe('date conditions', () => {
  const parse = (where: unknown) => {
    const r = parseCondition(where)
    assert.ok(r.ok, JSON.stringify(r))
    return r.value
  }
  const at = (iso: string) => Date.parse(iso)
  const matches = (where: unknown, value: string, ctx: DateContext) =>
    evaluateCondition(resolveDates(parse(where), ctx), 'u', { d: value })

  test('parses every date operator', () => {
    assert.deepEqual(parse({ field: 'd', op: 'before', value: '2025-03-01' }), {
      kind: 'date',
      field: 'd',
      op: 'before',
      value: '2025-03-01',
    })
    assert.deepEqual(
      parse({ field: 'd', op: 'between', value: { from: '2025-03-01', to: '2025-04-01T00:00Z' } }).kind,
      'date',
    )
    for (const op of ['within_last', 'more_than_ago', 'within_next'])
      assert.deepEqual(parse({ field: 'd', op, value: { amount: 30, unit: 'days' } }), {
        kind: 'date',
        field: 'd',
        op,
        value: { amount: 30, unit: 'days' },
      })
  })

  test('a malformed date, range or unit is an issue naming its place', () => {
    const paths = (where: unknown) => issuesOf({ where }).map((i) => `${i.path} ${i.code}`)
    assert.deepEqual(paths({ field: 'd', op: 'before', value: '2025-02-30' }), ['where.value invalid_value'])
    assert.deepEqual(paths({ field: 'd', op: 'after', value: 20250301 }), ['where.value invalid_type'])
    assert.deepEqual(paths({ field: 'd', op: 'after' }), ['where.value required'])
    assert.deepEqual(paths({ all: [{ field: 'd', op: 'between', value: { from: '2025-03-01', to: '2025-3-1' } }] }), [
      'where.all[0].value.to invalid_value',
    ])
    assert.deepEqual(paths({ field: 'd', op: 'between', value: { from: '2025-03-01' } }), ['where.value.to required'])
    assert.deepEqual(paths({ field: 'd', op: 'between', value: { from: '2025-03-01', to: '2025-03-02', x: 1 } }), [
      'where.value.x unknown_key',
    ])
    assert.deepEqual(paths({ field: 'd', op: 'within_last', value: { amount: 3, unit: 'years' } }), [
      'where.value.unit invalid_value',
    ])
    assert.deepEqual(paths({ field: 'd', op: 'within_next', value: { amount: 0, unit: 'days' } }), [
      'where.value.amount invalid_value',
    ])
    assert.deepEqual(paths({ field: 'd', op: 'within_next', value: { amount: 1.5, unit: 'days' } }), [
      'where.value.amount invalid_value',
    ])
    assert.deepEqual(paths({ field: 'd', op: 'more_than_ago', value: '30 days' }), ['where.value invalid_type'])
    const msg = issuesOf({ where: { field: 'd', op: 'within_last', value: { amount: 3, unit: 'year' } } })[0]?.message
    assert.match(msg ?? '', /"minutes", "hours", "days", "weeks", "months"/)
  })

  test('before and after are strict; between includes from and excludes to', () => {
    const ctx = { now: 0, timeZone: 'UTC' }
    assert.equal(matches({ field: 'd', op: 'before', value: '2025-03-01' }, '2025-02-28T23:59:59.999Z', ctx), true)
    assert.equal(matches({ field: 'd', op: 'before', value: '2025-03-01' }, '2025-03-01', ctx), false)
    assert.equal(matches({ field: 'd', op: 'after', value: '2025-03-01' }, '2025-03-01', ctx), false)
    assert.equal(matches({ field: 'd', op: 'after', value: '2025-03-01' }, '2025-03-01T00:00:00.001Z', ctx), true)
    assert.equal(matches({ field: 'd', op: 'after', value: '2025-03-01' }, '2025-03-02', ctx), true)
    const march = { field: 'd', op: 'between', value: { from: '2025-03-01', to: '2025-04-01' } }
    assert.equal(matches(march, '2025-03-01', ctx), true)
    assert.equal(matches(march, '2025-03-31T23:59:59.999Z', ctx), true)
    assert.equal(matches(march, '2025-04-01', ctx), false)
    assert.equal(matches(march, '2025-04-01T08:59:59+09:00', ctx), true)
    // Not dates match no date operator, whatever the window.
    for (const v of ['2025-02-30', '2025-3-1', 'soon', '1740821400000'])
      assert.equal(matches({ field: 'd', op: 'before', value: '9999-12-31' }, v, ctx), false, v)
  })

  test('a bare date is midnight in the project zone: Asia/Tokyo against UTC', () => {
    const tokyo = { now: 0, timeZone: 'Asia/Tokyo' }
    const utcCtx = { now: 0, timeZone: 'UTC' }
    // 2025-02-28T20:00Z is March 1st, 05:00 in Tokyo: after a bare March 1st there, not in UTC.
    const cond = { field: 'd', op: 'after', value: '2025-03-01' }
    assert.equal(matches(cond, '2025-02-28T20:00:00Z', tokyo), true)
    assert.equal(matches(cond, '2025-02-28T20:00:00Z', utcCtx), false)
    // A stored bare date against an instant bound: Tokyo's March 1st begins at 2025-02-28T15:00Z.
    const before = { field: 'd', op: 'before', value: '2025-02-28T16:00:00Z' }
    assert.equal(matches(before, '2025-03-01', tokyo), true)
    assert.equal(matches(before, '2025-03-01', utcCtx), false)
  })

  test('relative operators move with "now", with no change to the data', () => {
    const last30 = { field: 'd', op: 'within_last', value: { amount: 30, unit: 'days' } }
    const older = { field: 'd', op: 'more_than_ago', value: { amount: 30, unit: 'days' } }
    const next7 = { field: 'd', op: 'within_next', value: { amount: 7, unit: 'days' } }
    const signup = '2025-03-01T10:00:00Z'
    const ctx = (iso: string) => ({ now: at(iso), timeZone: 'UTC' })
    assert.equal(matches(last30, signup, ctx('2025-03-01T10:00:00Z')), true, 'this very moment is in the last 30 days')
    assert.equal(matches(last30, signup, ctx('2025-03-31T10:00:00Z')), true)
    assert.equal(matches(last30, signup, ctx('2025-03-31T10:00:00.001Z')), false)
    assert.equal(matches(older, signup, ctx('2025-03-31T10:00:00.001Z')), true)
    assert.equal(matches(last30, signup, ctx('2025-02-28T00:00:00Z')), false, 'the future is not in the past')
    assert.equal(matches(next7, signup, ctx('2025-02-22T10:00:00Z')), true)
    assert.equal(matches(next7, signup, ctx('2025-02-22T09:59:59.999Z')), false)
    assert.equal(matches(next7, signup, ctx('2025-03-01T10:00:00Z')), false, 'now is not in the future')
    // Bare dates: "the last 7 days" on March 10th are March 4th to 10th.
    const last7 = { field: 'd', op: 'within_last', value: { amount: 7, unit: 'days' } }
    assert.equal(matches(last7, '2025-03-04', ctx('2025-03-10T15:00:00Z')), true)
    assert.equal(matches(last7, '2025-03-03', ctx('2025-03-10T15:00:00Z')), false)
    assert.equal(matches(last7, '2025-03-10', ctx('2025-03-10T15:00:00Z')), true)
    assert.equal(matches(last7, '2025-03-11', ctx('2025-03-10T15:00:00Z')), false)
  })

  test('an unresolved date leaf is a programming error, not a silent answer', () => {
    assert.throws(() => evaluateCondition(parse({ field: 'd', op: 'before', value: '2025-03-01' }), 'u', { d: 'x' }))
  })
})
