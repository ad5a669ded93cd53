import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Condition } from '../core/segment.js'
import { NUMBER_PATTERN } from '../core/segment.js'
import {
  compileCondition,
  postgresDialect,
  registerSqliteFunctions,
  sqliteDialect,
  sqliteJsonPath,
  toSqlDateIn,
  toSqlNumber,
  type CompiledSql,
  type SqlDialect,
} from './sql-dialect.js'

const eq = (field: string, value: string): Condition => ({ kind: 'text', field, op: 'eq', value })

function testSql(cond: Condition, expected: { sqlite: CompiledSql; postgres: CompiledSql }): void {
  const dialects: [keyof typeof expected, SqlDialect][] = [
    ['sqlite', sqliteDialect],
    ['postgres', postgresDialect],
  ]
  for (const [name, dialect] of dialects) {
    assert.deepEqual(compileCondition(cond, dialect), expected[name], name)
  }
}

describe('compileCondition', () => {
  test('eq binds the path and the value', () => {
    testSql(eq('plan', 'pro'), {
      sqlite: { sql: 'COALESCE(json_extract(attrs, ?) = ?, FALSE)', params: ['$."plan"', 'pro'] },
      postgres: { sql: 'COALESCE((attrs ->> $1) = $2, FALSE)', params: ['plan', 'pro'] },
    })
  })

  test('neq, contains, starts_with', () => {
    testSql(
      { kind: 'text', field: 'a', op: 'neq', value: 'x' },
      {
        sqlite: { sql: 'COALESCE(json_extract(attrs, ?) <> ?, FALSE)', params: ['$."a"', 'x'] },
        postgres: { sql: 'COALESCE((attrs ->> $1) <> $2, FALSE)', params: ['a', 'x'] },
      },
    )
    testSql(
      { kind: 'text', field: 'a', op: 'contains', value: '%_' },
      {
        sqlite: { sql: 'COALESCE((instr(json_extract(attrs, ?), ?) > 0), FALSE)', params: ['$."a"', '%_'] },
        postgres: { sql: 'COALESCE((strpos((attrs ->> $1), $2) > 0), FALSE)', params: ['a', '%_'] },
      },
    )
    testSql(
      { kind: 'text', field: 'a', op: 'starts_with', value: 'x' },
      {
        sqlite: { sql: 'COALESCE((instr(json_extract(attrs, ?), ?) = 1), FALSE)', params: ['$."a"', 'x'] },
        postgres: { sql: 'COALESCE(starts_with((attrs ->> $1), $2), FALSE)', params: ['a', 'x'] },
      },
    )
  })

  test('in and not_in bind the whole list as one parameter', () => {
    testSql(
      { kind: 'set', field: 'c', op: 'in', values: ['JP', "U'S"] },
      {
        sqlite: {
          sql: 'COALESCE((json_extract(attrs, ?) IN (SELECT value FROM json_each(?))), FALSE)',
          params: ['$."c"', '["JP","U\'S"]'],
        },
        postgres: { sql: 'COALESCE(((attrs ->> $1) = ANY($2::text[])), FALSE)', params: ['c', ['JP', "U'S"]] },
      },
    )
    testSql(
      { kind: 'set', field: 'c', op: 'not_in', values: ['JP'] },
      {
        sqlite: {
          sql: 'COALESCE((json_extract(attrs, ?) NOT IN (SELECT value FROM json_each(?))), FALSE)',
          params: ['$."c"', '["JP"]'],
        },
        postgres: { sql: 'COALESCE(((attrs ->> $1) <> ALL($2::text[])), FALSE)', params: ['c', ['JP']] },
      },
    )
  })

  test('numeric ops use the one number rule on both backends', () => {
    testSql(
      { kind: 'numeric', field: 'ltv', op: 'gte', value: 2.5 },
      {
        sqlite: { sql: 'COALESCE(tb_number(json_extract(attrs, ?)) >= ?, FALSE)', params: ['$."ltv"', 2.5] },
        postgres: {
          sql: `COALESCE((CASE WHEN (attrs ->> $1) ~ '${NUMBER_PATTERN}' THEN ((attrs ->> $1))::float8 END) >= $2::float8, FALSE)`,
          params: ['ltv', 2.5],
        },
      },
    )
    for (const [op, sym] of [
      ['gt', '>'],
      ['lt', '<'],
      ['lte', '<='],
    ] as const) {
      const { sql } = compileCondition({ kind: 'numeric', field: 'n', op, value: 1 }, sqliteDialect)
      assert.ok(sql.includes(`) ${sym} ?`), sql)
    }
  })

  test('presence', () => {
    testSql(
      { kind: 'presence', field: 'a', op: 'exists' },
      {
        sqlite: { sql: '(json_type(attrs, ?) IS NOT NULL)', params: ['$."a"'] },
        postgres: { sql: '(attrs ? $1)', params: ['a'] },
      },
    )
    testSql(
      { kind: 'presence', field: 'a', op: 'not_exists' },
      {
        sqlite: { sql: '(NOT (json_type(attrs, ?) IS NOT NULL))', params: ['$."a"'] },
        postgres: { sql: '(NOT (attrs ? $1))', params: ['a'] },
      },
    )
  })

  test('user_id is the column, always present', () => {
    testSql(eq('user_id', 'u1'), {
      sqlite: { sql: 'COALESCE(user_id = ?, FALSE)', params: ['u1'] },
      postgres: { sql: 'COALESCE(user_id = $1, FALSE)', params: ['u1'] },
    })
    testSql(
      { kind: 'presence', field: 'user_id', op: 'exists' },
      {
        sqlite: { sql: 'TRUE', params: [] },
        postgres: { sql: 'TRUE', params: [] },
      },
    )
    testSql(
      { kind: 'presence', field: 'user_id', op: 'not_exists' },
      {
        sqlite: { sql: 'FALSE', params: [] },
        postgres: { sql: 'FALSE', params: [] },
      },
    )
  })

  test('groups nest, empty groups are constants, placeholders continue from firstParamIndex', () => {
    const cond: Condition = {
      kind: 'all',
      of: [eq('a', '1'), { kind: 'not', of: { kind: 'any', of: [eq('b', '2'), { kind: 'all', of: [] }] } }],
    }
    assert.deepEqual(compileCondition(cond, postgresDialect, 3), {
      sql: '(COALESCE((attrs ->> $3) = $4, FALSE) AND (NOT (COALESCE((attrs ->> $5) = $6, FALSE) OR TRUE)))',
      params: ['a', '1', 'b', '2'],
    })
    assert.equal(compileCondition({ kind: 'any', of: [] }, sqliteDialect).sql, 'FALSE')
  })

  test('custom column names', () => {
    const { sql } = compileCondition(eq('x', 'y'), postgresDialect, 1, { userId: 'p.user_id', attrs: 'p.attrs' })
    assert.equal(sql, 'COALESCE((p.attrs ->> $1) = $2, FALSE)')
  })

  test('hostile names and values never reach the SQL text', () => {
    const name = `a"b.c$'\\); DROP TABLE profiles; --`
    const value = `'); DROP TABLE profiles; --`
    for (const d of [sqliteDialect, postgresDialect]) {
      const { sql, params } = compileCondition(
        { kind: 'all', of: [eq(name, value), { kind: 'set', field: name, op: 'in', values: [value] }] },
        d,
      )
      assert.ok(!sql.includes('DROP'), sql)
      assert.ok(params.length === 4)
    }
  })
})

describe('sqliteJsonPath', () => {
  test('quotes the key and escapes quote and backslash', () => {
    assert.equal(sqliteJsonPath('plan'), '$."plan"')
    assert.equal(sqliteJsonPath('a.b$[0]'), '$."a.b$[0]"')
    assert.equal(sqliteJsonPath('a"b\\c'), '$."a\\"b\\\\c"')
  })
})

describe('tb_number', () => {
  test('is the reference number rule, NULL otherwise', () => {
    assert.equal(toSqlNumber('12.5'), 12.5)
    assert.equal(toSqlNumber('-1e5'), -1e5)
    assert.equal(toSqlNumber('01'), null)
    assert.equal(toSqlNumber('abc'), null)
    assert.equal(toSqlNumber(null), null)
    assert.equal(toSqlNumber(5), null)
  })
  test('registers as a deterministic function', () => {
    const calls: [string, boolean][] = []
    registerSqliteFunctions({
      function: (name, options) => {
        calls.push([name, options.deterministic])
        return undefined
      },
    })
    assert.deepEqual(calls, [
      ['tb_number', true],
      ['tb_date_in', true],
    ])
  })
})

describe('date conditions', () => {
  const window = { from: 1000, to: Infinity, fromDay: 3, toDay: Infinity }
  const leaf: Condition = { kind: 'date', field: 'd', op: 'after', value: '1970-01-01T00:00:00.999Z', window }

  test('compile to tb_date_in with the window as parameters, NULL for an open end', () => {
    testSql(leaf, {
      sqlite: {
        sql: 'COALESCE(tb_date_in(json_extract(attrs, ?), ?, ?, ?, ?), FALSE)',
        params: ['$."d"', 1000, null, 3, null],
      },
      postgres: {
        sql: 'COALESCE(tb_date_in((attrs ->> $1), $2::bigint, $3::bigint, $4::integer, $5::integer), FALSE)',
        params: ['d', 1000, null, 3, null],
      },
    })
  })

  test('an empty window is FALSE without a parameter; an unresolved leaf throws', () => {
    const empty: Condition = { ...leaf, window: { from: 5, to: 5, fromDay: 2, toDay: 1 } }
    assert.deepEqual(compileCondition({ kind: 'not', of: empty }, postgresDialect), { sql: '(NOT FALSE)', params: [] })
    assert.throws(() => compileCondition({ kind: 'date', field: 'd', op: 'after', value: '2025-01-01' }, sqliteDialect))
  })

  test('tb_date_in on SQLite is the reference rule: 1, 0, or NULL for NULL', () => {
    assert.equal(toSqlDateIn('2025-03-01T09:30:00Z', Date.UTC(2025, 2, 1, 9, 30), null, null, null), 1)
    assert.equal(toSqlDateIn('2025-03-01T09:30:00Z', null, Date.UTC(2025, 2, 1, 9, 30), null, null), 0)
    assert.equal(toSqlDateIn('2025-03-01', null, null, 20148, 20149), 1)
    assert.equal(toSqlDateIn('2025-03-01', null, null, 20149, null), 0)
    assert.equal(toSqlDateIn('2025-02-30', null, null, null, null), 0)
    assert.equal(toSqlDateIn(5, null, null, null, null), 0)
    assert.equal(toSqlDateIn(null, null, null, null, null), null)
    // SQLite hands large integers over as bigint when safeIntegers is on.
    assert.equal(toSqlDateIn('2025-03-01T09:30:00Z', BigInt(Date.UTC(2025, 2, 1, 9, 30)), null, null, null), 1)
  })
})
