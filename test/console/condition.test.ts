import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseSegmentQuery } from '../../src/core/segment.js'
import {
  fromWhere,
  newGroup,
  newRule,
  nodeAtPath,
  toWhere,
  type GroupNode,
  type RuleNode,
} from '../../console/src/condition.js'
import { fieldType, OPERATORS, operatorsFor } from '../../console/src/operators.js'

// The segment builder's model is pure: what it sends must be what the query API accepts.

function rule(field: string, op: string, value = '', value2 = 'days'): RuleNode {
  return { ...newRule(field, op), value, value2 }
}

const CORE_OPS = [
  'eq',
  'neq',
  'contains',
  'starts_with',
  'in',
  'not_in',
  'gt',
  'gte',
  'lt',
  'lte',
  'exists',
  'not_exists',
]

test('every operator of the query API is offered, and its value becomes the type the API takes', () => {
  for (const op of CORE_OPS)
    assert.ok(
      OPERATORS.some((o) => o.op === op),
      op,
    )
  const root = newGroup('all', [
    rule('plan', 'eq', 'pro'),
    rule('plan', 'neq', 'free'),
    rule('email', 'contains', '@example'),
    rule('email', 'starts_with', 'ann'),
    rule('country', 'in', 'jp, fr ,, de'),
    rule('country', 'not_in', 'us'),
    rule('ltv', 'gt', '10'),
    rule('ltv', 'gte', '-3.5'),
    rule('ltv', 'lt', '1e5'),
    rule('ltv', 'lte', '0'),
    rule('city', 'exists'),
    rule('city', 'not_exists'),
  ])
  const { where, errors } = toWhere(root)
  assert.equal(errors.size, 0)
  assert.deepEqual(where, {
    all: [
      { field: 'plan', op: 'eq', value: 'pro' },
      { field: 'plan', op: 'neq', value: 'free' },
      { field: 'email', op: 'contains', value: '@example' },
      { field: 'email', op: 'starts_with', value: 'ann' },
      { field: 'country', op: 'in', value: ['jp', 'fr', 'de'] },
      { field: 'country', op: 'not_in', value: ['us'] },
      { field: 'ltv', op: 'gt', value: 10 },
      { field: 'ltv', op: 'gte', value: -3.5 },
      { field: 'ltv', op: 'lt', value: 1e5 },
      { field: 'ltv', op: 'lte', value: 0 },
      { field: 'city', op: 'exists' },
      { field: 'city', op: 'not_exists' },
    ],
  })
  // The server's own parser accepts it as is.
  assert.equal(parseSegmentQuery({ where }).ok, true)
})

test('all / any / none groups nest and translate to all, any and not(any)', () => {
  const root = newGroup('any', [
    rule('plan', 'eq', 'pro'),
    newGroup('none', [rule('country', 'eq', 'jp'), rule('x', 'exists')]),
  ])
  const { where } = toWhere(root)
  assert.deepEqual(where, {
    any: [
      { field: 'plan', op: 'eq', value: 'pro' },
      {
        not: {
          any: [
            { field: 'country', op: 'eq', value: 'jp' },
            { field: 'x', op: 'exists' },
          ],
        },
      },
    ],
  })
  assert.equal(parseSegmentQuery({ where }).ok, true)
  assert.deepEqual(toWhere(newGroup('all', [])).where, { all: [] })
})

test('an incomplete rule gives no condition and an error on that rule only', () => {
  const bad = rule('ltv', 'gt', 'ten')
  const empty = rule('', 'eq', 'x')
  const noList = rule('c', 'in', ' , ')
  const good = rule('plan', 'eq', 'pro')
  const { where, errors } = toWhere(newGroup('all', [good, bad, empty, noList]))
  assert.equal(where, null)
  assert.match(errors.get(bad.id) ?? '', /number/)
  assert.match(errors.get(empty.id) ?? '', /field/)
  assert.match(errors.get(noList.id) ?? '', /values/)
  assert.equal(errors.has(good.id), false)
  // Numbers follow the server's number rule: "01" and "1." are not numbers there either.
  for (const text of ['01', '1.', '+1', '', '1e100'])
    assert.ok(toWhere(newGroup('all', [rule('n', 'gt', text)])).errors.size === 1, text)
})

test('a saved condition loads back into the builder and translates to the same JSON', () => {
  const conditions = [
    {
      all: [
        { field: 'plan', op: 'eq', value: 'pro' },
        { field: 'ltv', op: 'gte', value: 100 },
      ],
    },
    { any: [{ field: 'a', op: 'in', value: ['x', 'y'] }, { all: [{ field: 'b', op: 'exists' }] }] },
    { not: { any: [{ field: 'a', op: 'eq', value: '1' }] } },
  ]
  for (const where of conditions) {
    const group = fromWhere(where)
    assert.ok(group)
    assert.deepEqual(toWhere(group).where, where)
  }
  // A single leaf becomes an "all" of one; a lone `not` a "none" of one.
  assert.deepEqual(toWhere(fromWhere({ field: 'a', op: 'exists' }) as GroupNode).where, {
    all: [{ field: 'a', op: 'exists' }],
  })
  assert.deepEqual(toWhere(fromWhere({ not: { field: 'a', op: 'exists' } }) as GroupNode).where, {
    not: { any: [{ field: 'a', op: 'exists' }] },
  })
  // Shapes the builder cannot show are reported, so the page offers the JSON instead of changing it.
  assert.equal(
    fromWhere({
      not: {
        all: [
          { field: 'a', op: 'exists' },
          { field: 'b', op: 'exists' },
        ],
      },
    }),
    null,
  )
  assert.equal(fromWhere({ field: 'a', op: 'like', value: 'x' }), null)
})

test('a server error naming where.any[1].all[0] points at that rule', () => {
  const target = rule('b', 'eq', 'x')
  const root = newGroup('any', [rule('a', 'eq', '1'), newGroup('all', [target])])
  assert.equal(nodeAtPath(root, 'where.any[1].all[0].value: must be a string'), target.id)
  assert.equal(nodeAtPath(root, 'where.any: too many'), root.id)
  assert.equal(nodeAtPath(root, 'name: required'), null)
  const none = newGroup('none', [target])
  assert.equal(nodeAtPath(none, 'where.not.any[0].op: unknown'), target.id)
})

test('operators per field type come from one table; date operators only for dates (#10)', () => {
  const ops = (type: Parameters<typeof operatorsFor>[0]) => operatorsFor(type).map((o) => o.op)
  assert.ok(ops('number').includes('gt'))
  assert.ok(!ops('boolean').includes('gt'))
  assert.ok(ops('date').includes('within_last'))
  assert.ok(!ops('string').includes('before'))
  assert.equal(fieldType({ top_values: [{ value: '12' }, { value: '-3.5' }] }), 'number')
  assert.equal(fieldType({ top_values: [{ value: '12' }, { value: 'n/a' }] }), 'string')
  assert.equal(fieldType({ type: 'date', top_values: null }), 'date')
  const relative = toWhere(newGroup('all', [rule('signup', 'within_last', '30', 'days')]))
  assert.deepEqual(relative.where, {
    all: [{ field: 'signup', op: 'within_last', value: { amount: 30, unit: 'days' } }],
  })
  const range = toWhere(newGroup('all', [rule('signup', 'between', '2025-01-01', '2025-02-01')]))
  assert.deepEqual(range.where, {
    all: [{ field: 'signup', op: 'between', value: { from: '2025-01-01', to: '2025-02-01' } }],
  })
})
