import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { MAX_FIELD_NAME, MAX_FIELDS, MAX_USERS, MAX_VALUE_CODE_POINTS } from './limits.js'
import type { Issue } from './result.js'
import { compareCodePoints } from './text.js'
import { parseUploadBody, type UploadBatch } from './upload.js'

function accept(body: unknown): UploadBatch {
  const r = parseUploadBody(body)
  if (!r.ok) assert.fail(`expected ok, got ${JSON.stringify(r.error[0])}`)
  return r.value
}

function refuse(body: unknown): Issue[] {
  const r = parseUploadBody(body)
  if (r.ok) assert.fail('expected the body to be refused')
  assert.ok(r.error.length > 0)
  return r.error
}

function firstIssue(body: unknown): Issue {
  const issue = refuse(body)[0]
  assert.ok(issue)
  return issue
}

const fieldsOf = (n: number): string[] => ['user_id', ...Array.from({ length: n - 1 }, (_, i) => `f${i}`)]
const rowOf = (id: string, n: number, value = 'v'): string[] => [id, ...Array.from({ length: n - 1 }, () => value)]
const one = (field: string, value: unknown): unknown => ({ field_name: ['user_id', field], values: [['u1', value]] })
const patchOf = (batch: UploadBatch, userId: string): Record<string, string | null> => {
  const p = batch.patches.find((x) => x.userId === userId)
  assert.ok(p, `no patch for ${userId}`)
  return { ...p.attributes }
}

describe('parseUploadBody: the spec example', () => {
  test('accepts the example of spec §5 and turns rows into patches', () => {
    const batch = accept({
      field_name: ['user_id', 'watch_conan', 'watch_attack_on_titan'],
      values: [
        ['abcd123', 'yes', 'no'],
        ['abcd456', 'yes', 'yes'],
        ['abcd789', 'no', 'no'],
      ],
    })
    assert.equal(batch.rows, 3)
    assert.deepEqual(
      batch.patches.map((p) => [p.userId, { ...p.attributes }]),
      [
        ['abcd123', { watch_conan: 'yes', watch_attack_on_titan: 'no' }],
        ['abcd456', { watch_conan: 'yes', watch_attack_on_titan: 'yes' }],
        ['abcd789', { watch_conan: 'no', watch_attack_on_titan: 'no' }],
      ],
    )
  })

  test('user_id may be in any column and is not stored as an attribute', () => {
    const batch = accept({ field_name: ['a', 'user_id'], values: [['x', 'u1']] })
    assert.deepEqual(patchOf(batch, 'u1'), { a: 'x' })
  })

  test('only user_id is fine: the user is created with no attributes', () => {
    const batch = accept({ field_name: ['user_id'], values: [['u1']] })
    assert.deepEqual(patchOf(batch, 'u1'), {})
  })
})

describe('parseUploadBody: the body', () => {
  for (const [label, body] of [
    ['null', null],
    ['an array', []],
    ['a string', 'x'],
    ['a number', 1],
    ['undefined', undefined],
  ] as const) {
    test(`refuses ${label} as the body`, () => {
      const issue = firstIssue(body)
      assert.equal(issue.code, 'invalid_type')
      assert.equal(issue.path, '(body)')
    })
  }

  test('refuses unknown top-level keys, naming them', () => {
    const issues = refuse({ field_name: ['user_id'], values: [['u']], extra: 1, __proto__x: 2 })
    assert.deepEqual(
      issues.map((i) => [i.code, i.path]),
      [
        ['unknown_key', 'extra'],
        ['unknown_key', '__proto__x'],
      ],
    )
  })

  test('a JSON "__proto__" key at the top level is an unknown key, not a prototype', () => {
    const body = JSON.parse('{"field_name":["user_id"],"values":[["u"]],"__proto__":{"x":1}}') as unknown
    assert.equal(firstIssue(body).path, '__proto__')
  })

  test('requires field_name and values', () => {
    assert.deepEqual(
      refuse({}).map((i) => [i.code, i.path]),
      [
        ['required', 'field_name'],
        ['required', 'values'],
      ],
    )
  })
})

describe('parseUploadBody: field_name', () => {
  test(`${MAX_FIELDS} fields are accepted, ${MAX_FIELDS + 1} refused`, () => {
    accept({ field_name: fieldsOf(MAX_FIELDS), values: [rowOf('u', MAX_FIELDS)] })
    const issue = firstIssue({ field_name: fieldsOf(MAX_FIELDS + 1), values: [rowOf('u', MAX_FIELDS + 1)] })
    assert.equal(issue.code, 'too_big')
    assert.equal(issue.path, 'field_name')
    assert.match(issue.message, /51 fields; the limit is 50/)
  })

  test(`names of ${MAX_FIELD_NAME} code points are accepted, ${MAX_FIELD_NAME + 1} refused (ASCII, emoji, kanji)`, () => {
    for (const ch of ['a', '😀', '漢']) {
      accept(one(ch.repeat(MAX_FIELD_NAME), 'x'))
      const issue = firstIssue(one(ch.repeat(MAX_FIELD_NAME + 1), 'x'))
      assert.equal(issue.code, 'too_big')
      assert.equal(issue.path, 'field_name[1]')
    }
  })

  test('must include user_id', () => {
    const issue = firstIssue({ field_name: ['a'], values: [['x']] })
    assert.equal(issue.code, 'required')
    assert.match(issue.message, /user_id/)
  })

  test('refuses an empty array, a non-array, empty names, non-string names, duplicates, lone surrogates', () => {
    assert.equal(firstIssue({ field_name: [], values: [['u']] }).code, 'too_small')
    assert.equal(firstIssue({ field_name: 'user_id', values: [['u']] }).code, 'invalid_type')
    assert.deepEqual(
      [
        firstIssue({ field_name: ['user_id', ''], values: [['u', 'x']] }),
        firstIssue({ field_name: ['user_id', 7], values: [['u', 'x']] }),
        firstIssue({ field_name: ['user_id', 'a', 'a'], values: [['u', 'x', 'y']] }),
        firstIssue({ field_name: ['user_id', 'a\ud800'], values: [['u', 'x']] }),
      ].map((i) => [i.code, i.path]),
      [
        ['too_small', 'field_name[1]'],
        ['invalid_type', 'field_name[1]'],
        ['duplicate', 'field_name[2]'],
        ['invalid_string', 'field_name[1]'],
      ],
    )
  })

  test('__proto__, constructor and toString are ordinary attribute names', () => {
    const batch = accept({
      field_name: ['user_id', '__proto__', 'constructor', 'toString'],
      values: [['u', 'a', 'b', 'c']],
    })
    const patch = batch.patches[0]?.attributes
    assert.ok(patch)
    assert.equal(Object.getPrototypeOf(patch), null)
    assert.deepEqual(Object.keys(patch), ['__proto__', 'constructor', 'toString'])
    assert.equal(patch['__proto__'], 'a')
  })
})

describe('parseUploadBody: values', () => {
  test(`${MAX_USERS} rows are accepted, ${MAX_USERS + 1} refused, 0 refused`, () => {
    const rows = (n: number) => Array.from({ length: n }, (_, i) => [`u${i}`, 'x'])
    assert.equal(accept({ field_name: ['user_id', 'a'], values: rows(MAX_USERS) }).patches.length, MAX_USERS)
    const big = firstIssue({ field_name: ['user_id', 'a'], values: rows(MAX_USERS + 1) })
    assert.deepEqual([big.code, big.path], ['too_big', 'values'])
    assert.match(big.message, /101 rows; the limit is 100/)
    assert.equal(firstIssue({ field_name: ['user_id'], values: [] }).code, 'too_small')
    assert.equal(firstIssue({ field_name: ['user_id'], values: {} }).code, 'invalid_type')
  })

  test(`values of ${MAX_VALUE_CODE_POINTS} code points are accepted, ${MAX_VALUE_CODE_POINTS + 1} refused`, () => {
    for (const ch of ['a', '😀', '漢', '👍🏽'.slice(0, 2)]) {
      const batch = accept(one('a', ch.repeat(MAX_VALUE_CODE_POINTS)))
      assert.equal(patchOf(batch, 'u1')['a'], ch.repeat(MAX_VALUE_CODE_POINTS))
      const issue = firstIssue(one('a', ch.repeat(MAX_VALUE_CODE_POINTS + 1)))
      assert.deepEqual([issue.code, issue.path], ['too_big', 'values[0][1]'])
      assert.match(issue.message, /"a".*longer than 128 characters/)
    }
  })

  test('the limit applies to user_id too', () => {
    accept({ field_name: ['user_id'], values: [['😀'.repeat(MAX_VALUE_CODE_POINTS)]] })
    const issue = firstIssue({ field_name: ['user_id'], values: [['😀'.repeat(MAX_VALUE_CODE_POINTS + 1)]] })
    assert.deepEqual([issue.code, issue.path], ['too_big', 'values[0][0]'])
  })

  test('numbers and booleans are stored as their JSON text', () => {
    const batch = accept({
      field_name: ['user_id', 'n', 'f', 'neg', 'max', 'tiny', 'zero', 't', 'b'],
      values: [['u', 42, 1.5, -3, Number.MAX_SAFE_INTEGER, 1e-7, -0, true, false]],
    })
    assert.deepEqual(patchOf(batch, 'u'), {
      n: '42',
      f: '1.5',
      neg: '-3',
      max: '9007199254740991',
      tiny: '1e-7',
      zero: '0',
      t: 'true',
      b: 'false',
    })
    assert.deepEqual(patchOf(accept(JSON.parse('{"field_name":["user_id","a"],"values":[["u",1.50]]}')), 'u'), {
      a: '1.5',
    })
  })

  test('numbers that cannot be stored exactly are refused, never stored altered', () => {
    for (const [json, message] of [
      ['1e400', /too large to store \(send it as a string\)/],
      ['-1e400', /too large to store/],
      ['12345678901234567890123', /integer beyond ±9007199254740991 cannot be stored exactly/],
      ['9007199254740992', /integer beyond/],
      ['-9007199254740992', /integer beyond/],
      ['1e21', /integer beyond/],
    ] as const) {
      const issue = firstIssue(JSON.parse(`{"field_name":["user_id","a"],"values":[["u",${json}]]}`))
      assert.deepEqual([issue.code, issue.path], ['invalid_value', 'values[0][1]'], json)
      assert.match(issue.message, message, json)
      assert.match(issue.message, /^field "a": /)
    }
    assert.match(firstIssue(one('a', Number.NaN)).message, /NaN is not a JSON number/)
    assert.match(firstIssue(one('a', Number.POSITIVE_INFINITY)).message, /too large/)
    assert.deepEqual(patchOf(accept(one('a', -9007199254740991)), 'u1'), { a: '-9007199254740991' })
  })

  test('null, objects and arrays are refused with their type named', () => {
    for (const [v, word] of [
      [null, 'null'],
      [{}, 'an object'],
      [[], 'an array'],
    ] as const) {
      const issue = firstIssue(one('a', v))
      assert.deepEqual([issue.code, issue.path], ['invalid_type', 'values[0][1]'])
      assert.match(issue.message, new RegExp(`got ${word}`))
    }
  })

  test('"" clears: the patch removes the attribute (null)', () => {
    assert.deepEqual(patchOf(accept(one('a', '')), 'u1'), { a: null })
  })

  test('user_id must be a non-empty string', () => {
    for (const [v, got] of [
      ['', 'an empty string'],
      [12, 'a number'],
      [true, 'a boolean'],
      [null, 'null'],
    ] as const) {
      const issue = firstIssue({ field_name: ['a', 'user_id'], values: [['x', v]] })
      assert.deepEqual([issue.code, issue.path], ['invalid_value', 'values[0][1]'])
      assert.match(issue.message, new RegExp(`user_id must be a non-empty string, got ${got}`))
    }
  })

  test('rows must be arrays with one value per field', () => {
    const notArray = firstIssue({ field_name: ['user_id', 'a'], values: [['u', 'x'], 'row'] })
    assert.deepEqual([notArray.code, notArray.path], ['invalid_type', 'values[1]'])
    const short = firstIssue({ field_name: ['user_id', 'a'], values: [['u']] })
    assert.deepEqual([short.code, short.path], ['invalid_value', 'values[0]'])
    assert.match(short.message, /has 1 values but field_name has 2/)
    assert.equal(firstIssue({ field_name: ['user_id', 'a'], values: [['u', 'x', 'y']] }).code, 'invalid_value')
  })

  test('lone surrogates are refused; well-formed pairs are fine', () => {
    for (const bad of ['\ud800', 'a\udc00b', '\udbff\ud800']) {
      const issue = firstIssue(one('a', bad))
      assert.deepEqual([issue.code, issue.path], ['invalid_string', 'values[0][1]'])
    }
    accept(one('a', '\ud83d\ude00'))
  })

  test('U+0000 is refused in values, user ids and field names (PostgreSQL cannot store it)', () => {
    const inValue = firstIssue(one('a', 'x\0y'))
    assert.deepEqual([inValue.code, inValue.path], ['invalid_string', 'values[0][1]'])
    assert.match(inValue.message, /U\+0000/)
    const inUserId = firstIssue({ field_name: ['user_id'], values: [['u\0']] })
    assert.deepEqual([inUserId.code, inUserId.path], ['invalid_string', 'values[0][0]'])
    const inName = firstIssue({ field_name: ['user_id', 'a\0b'], values: [['u', 'x']] })
    assert.deepEqual([inName.code, inName.path], ['invalid_string', 'field_name[1]'])
  })

  test('repeated user_id rows apply in order: last value wins per attribute, others merge', () => {
    const batch = accept({
      field_name: ['user_id', 'a', 'b'],
      values: [
        ['u', '1', 'x'],
        ['v', '9', '9'],
        ['u', '2', ''],
      ],
    })
    assert.equal(batch.rows, 3)
    assert.equal(batch.patches.length, 2)
    assert.deepEqual(patchOf(batch, 'u'), { a: '2', b: null })
  })

  test('every problem is listed, the first one first, capped at 100', () => {
    const values = Array.from({ length: 100 }, (_, i) => [`u${i}`, null, null])
    const issues = refuse({ field_name: ['user_id', 'a', 'b'], values })
    assert.equal(issues.length, 100)
    assert.equal(issues[0]?.path, 'values[0][1]')
    assert.equal(issues[1]?.path, 'values[0][2]')
  })
})

describe('parseUploadBody: output', () => {
  test('patches are sorted by user_id in code point order (deadlock-free writes)', () => {
    const ids = ['b', '😀', '\uffff', 'a', 'B', 'é']
    const batch = accept({ field_name: ['user_id'], values: ids.map((id) => [id]) })
    assert.deepEqual(
      batch.patches.map((p) => p.userId),
      ['B', 'a', 'b', 'é', '\uffff', '😀'],
    )
  })

  test('property: any valid body is accepted and the patches equal a row-by-row replay', () => {
    // Any well-formed text but U+0000, which is refused on purpose (tested above).
    const storable = (s: string) => !s.includes('\0')
    const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }).filter(storable), fc.integer(), fc.boolean())
    const body = fc
      .uniqueArray(
        fc.oneof(
          fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }).filter(storable),
          fc.constantFrom('__proto__', 'constructor', 'toString'),
        ),
        { maxLength: 6 },
      )
      .filter((names) => !names.includes('user_id'))
      .chain((names) =>
        fc.record({
          field_name: fc.constant(['user_id', ...names]),
          values: fc.array(
            fc.tuple(
              fc.constantFrom('u1', 'u2', '😀', 'z'),
              fc.array(value, { minLength: names.length, maxLength: names.length }),
            ),
            { minLength: 1, maxLength: MAX_USERS },
          ),
        }),
      )
    fc.assert(
      fc.property(body, ({ field_name, values }) => {
        const rows = values.map(([id, rest]) => [id, ...rest])
        const batch = accept({ field_name, values: rows })
        // A Map, not `{}`: in a plain object, assigning `__proto__` would hit the prototype setter.
        const expected = new Map<string, Map<string, string | null>>()
        for (const row of rows) {
          const patch = expected.get(row[0] as string) ?? new Map<string, string | null>()
          field_name.forEach((name, i) => {
            if (i === 0) return
            const text = String(row[i])
            patch.set(name, text === '' ? null : text)
          })
          expected.set(row[0] as string, patch)
        }
        const ids = [...expected.keys()].sort(compareCodePoints)
        assert.deepEqual(
          batch.patches.map((p) => p.userId),
          ids,
        )
        for (const id of ids) assert.deepEqual(patchOf(batch, id), Object.fromEntries(expected.get(id) ?? []))
      }),
      { numRuns: 200 },
    )
  })
})
