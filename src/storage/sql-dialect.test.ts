import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Database from 'better-sqlite3'
import type { Condition } from '../core/segment.js'
import { NUMBER_PATTERN } from '../core/segment.js'
import {
  compileCondition,
  postgresDialect,
  registerSqliteFunctions,
  sqliteDialect,
  SQLITE_IN_PLACEHOLDERS,
  sqliteJsonPath,
  sqliteStringLiteral,
  postgresStringLiteral,
  attributeIndexExpression,
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
  test('eq: the attribute name is a literal (an index on the same expression can serve it), the value a parameter', () => {
    testSql(eq('plan', 'pro'), {
      sqlite: { sql: `json_extract(attrs, '$."plan"') = ?`, params: ['pro'] },
      postgres: { sql: `(attrs ->> 'plan') = $1`, params: ['pro'] },
    })
  })

  test('neq, contains, starts_with', () => {
    testSql(
      { kind: 'text', field: 'a', op: 'neq', value: 'x' },
      {
        sqlite: { sql: `json_extract(attrs, '$."a"') <> ?`, params: ['x'] },
        postgres: { sql: `(attrs ->> 'a') <> $1`, params: ['x'] },
      },
    )
    testSql(
      { kind: 'text', field: 'a', op: 'contains', value: '%_' },
      {
        sqlite: { sql: `(instr(json_extract(attrs, '$."a"'), ?) > 0)`, params: ['%_'] },
        postgres: { sql: `(strpos((attrs ->> 'a'), $1) > 0)`, params: ['%_'] },
      },
    )
    testSql(
      { kind: 'text', field: 'a', op: 'starts_with', value: 'x' },
      {
        sqlite: { sql: `(instr(json_extract(attrs, '$."a"'), ?) = 1)`, params: ['x'] },
        postgres: { sql: `starts_with((attrs ->> 'a'), $1)`, params: ['x'] },
      },
    )
  })

  test('in and not_in: SQLite binds each value of a short list (an index can probe them), PostgreSQL one array', () => {
    testSql(
      { kind: 'set', field: 'c', op: 'in', values: ['JP', "U'S"] },
      {
        sqlite: { sql: `(json_extract(attrs, '$."c"') IN (?, ?))`, params: ['JP', "U'S"] },
        postgres: { sql: `((attrs ->> 'c') = ANY($1::text[]))`, params: [['JP', "U'S"]] },
      },
    )
    testSql(
      { kind: 'set', field: 'c', op: 'not_in', values: ['JP'] },
      {
        sqlite: { sql: `(json_extract(attrs, '$."c"') NOT IN (?))`, params: ['JP'] },
        postgres: { sql: `((attrs ->> 'c') <> ALL($1::text[]))`, params: [['JP']] },
      },
    )
  })

  test('SQLite binds a list longer than SQLITE_IN_PLACEHOLDERS as one JSON parameter (bounded parameter count)', () => {
    const long = Array.from({ length: SQLITE_IN_PLACEHOLDERS + 1 }, (_, i) => `v${i}`)
    const exact = Array.from({ length: SQLITE_IN_PLACEHOLDERS }, (_, i) => `v${i}`)
    const compiledLong = compileCondition({ kind: 'set', field: 'c', op: 'in', values: long }, sqliteDialect)
    assert.equal(compiledLong.sql, `(json_extract(attrs, '$."c"') IN (SELECT value FROM json_each(?)))`)
    assert.deepEqual(compiledLong.params, [JSON.stringify(long)])
    const compiledExact = compileCondition({ kind: 'set', field: 'c', op: 'not_in', values: exact }, sqliteDialect)
    assert.equal(compiledExact.params.length, SQLITE_IN_PLACEHOLDERS)
    // Both forms select the same rows.
    const db = new Database(':memory:')
    db.exec(`CREATE TABLE t (attrs TEXT); INSERT INTO t VALUES ('{"c":"v3"}'), ('{"c":"zz"}'), ('{}')`)
    const count = (q: { sql: string; params: unknown[] }) =>
      db
        .prepare(`SELECT count(*) FROM t WHERE ${q.sql}`)
        .pluck()
        .get(...q.params)
    assert.equal(count(compiledLong), 1)
    assert.equal(count(compiledExact), 1, 'only zz: v3 is in the list, and an absent attribute matches neither form')
    db.close()
  })

  test('numeric ops use the one number rule on both backends', () => {
    testSql(
      { kind: 'numeric', field: 'ltv', op: 'gte', value: 2.5 },
      {
        sqlite: { sql: `tb_number(json_extract(attrs, '$."ltv"')) >= ?`, params: [2.5] },
        postgres: {
          sql: `(CASE WHEN (attrs ->> 'ltv') ~ '${NUMBER_PATTERN}' THEN ((attrs ->> 'ltv'))::float8 END) >= $1::float8`,
          params: [2.5],
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

  test('presence is IS [NOT] NULL on the same expression (never NULL itself)', () => {
    testSql(
      { kind: 'presence', field: 'a', op: 'exists' },
      {
        sqlite: { sql: `(json_extract(attrs, '$."a"') IS NOT NULL)`, params: [] },
        postgres: { sql: `((attrs ->> 'a') IS NOT NULL)`, params: [] },
      },
    )
    testSql(
      { kind: 'presence', field: 'a', op: 'not_exists' },
      {
        sqlite: { sql: `(json_extract(attrs, '$."a"') IS NULL)`, params: [] },
        postgres: { sql: `((attrs ->> 'a') IS NULL)`, params: [] },
      },
    )
  })

  test('user_id is the column, always present', () => {
    testSql(eq('user_id', 'u1'), {
      sqlite: { sql: 'user_id = ?', params: ['u1'] },
      postgres: { sql: 'user_id = $1', params: ['u1'] },
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

  test('groups nest; leaves under a NOT are COALESCEd, others bare; placeholders continue from firstParamIndex', () => {
    const cond: Condition = {
      kind: 'all',
      of: [eq('a', '1'), { kind: 'not', of: { kind: 'any', of: [eq('b', '2'), { kind: 'all', of: [] }] } }],
    }
    assert.deepEqual(compileCondition(cond, postgresDialect, 3), {
      sql: `((attrs ->> 'a') = $3 AND (NOT (COALESCE((attrs ->> 'b') = $4, FALSE) OR TRUE)))`,
      params: ['1', '2'],
    })
    assert.equal(compileCondition({ kind: 'any', of: [] }, sqliteDialect).sql, 'FALSE')
  })

  test('custom column names', () => {
    const { sql } = compileCondition(eq('x', 'y'), postgresDialect, 1, { userId: 'p.user_id', attrs: 'p.attrs' })
    assert.equal(sql, `(p.attrs ->> 'x') = $1`)
  })

  test('hostile names are quoted literals and values parameters: SQLite runs them as data', () => {
    const name = `a"b.c$'\\); DROP TABLE profiles; --`
    const value = `'); DROP TABLE profiles; --`
    const db = new Database(':memory:')
    db.exec('CREATE TABLE profiles (user_id TEXT, attrs TEXT)')
    db.prepare('INSERT INTO profiles VALUES (?, ?), (?, ?)').run('u1', JSON.stringify({ [name]: value }), 'u2', '{}')
    const { sql, params } = compileCondition(
      { kind: 'all', of: [eq(name, value), { kind: 'set', field: name, op: 'in', values: [value] }] },
      sqliteDialect,
    )
    assert.ok(!params.some((p) => p === name))
    assert.deepEqual(
      db
        .prepare(`SELECT user_id FROM profiles WHERE ${sql}`)
        .pluck()
        .all(...params),
      ['u1'],
    )
    assert.equal(db.prepare('SELECT count(*) FROM profiles').pluck().get(), 2)
    db.close()
  })

  test('PostgreSQL literals: quotes doubled; a backslash makes an E string with backslashes doubled', () => {
    assert.equal(postgresStringLiteral(`it's`), `'it''s'`)
    assert.equal(postgresStringLiteral(`a\\'b`), `E'a\\\\''b'`)
    assert.equal(sqliteStringLiteral(`it's \\`), `'it''s \\'`)
  })

  test('an attribute index keys on exactly the expression the conditions use', () => {
    for (const d of [sqliteDialect, postgresDialect]) {
      const text = attributeIndexExpression(d, 'plan', 'text')
      assert.ok(compileCondition(eq('plan', 'x'), d).sql.startsWith(text), d.name)
      const number = attributeIndexExpression(d, 'ltv', 'number')
      const numeric = compileCondition({ kind: 'numeric', field: 'ltv', op: 'lt', value: 1 }, d).sql
      assert.ok(numeric.startsWith(number), `${d.name}: ${numeric}`)
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
        sql: `tb_date_in(json_extract(attrs, '$."d"'), ?, ?, ?, ?)`,
        params: [1000, null, 3, null],
      },
      postgres: {
        sql: `tb_date_in((attrs ->> 'd'), $1::bigint, $2::bigint, $3::integer, $4::integer)`,
        params: [1000, null, 3, null],
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
