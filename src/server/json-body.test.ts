import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_JSON_DEPTH, MAX_JSON_VALUES, holdsMoreValuesThan, nestsDeeperThan } from './json-body.js'
import { buildTestApp } from './test-app.js'

const nested = (depth: number, open = '[', close = ']') => open.repeat(depth) + close.repeat(depth)

describe('nestsDeeperThan', () => {
  test('at the limit and one past it, for arrays and objects', () => {
    assert.equal(nestsDeeperThan(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH), false)
    assert.equal(nestsDeeperThan(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH), true)
    const objects = (d: number) => '{"k":'.repeat(d) + '1' + '}'.repeat(d)
    assert.equal(nestsDeeperThan(objects(MAX_JSON_DEPTH), MAX_JSON_DEPTH), false)
    assert.equal(nestsDeeperThan(objects(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH), true)
  })

  test('many brackets side by side are not depth', () => {
    assert.equal(nestsDeeperThan('[' + Array(10_000).fill('[{}]').join(',') + ']', 3), false)
    assert.equal(nestsDeeperThan('[' + Array(10_000).fill('[{}]').join(',') + ']', 2), true)
  })

  test('brackets inside strings, with escaped quotes and backslashes, do not count', () => {
    const s = JSON.stringify(['['.repeat(1000) + '"\\' + '{'.repeat(1000), 'x\\', '[[['])
    assert.equal(nestsDeeperThan(s, 1), false)
    assert.equal(nestsDeeperThan(JSON.stringify([['\\"[[[[']]), 2), false)
    assert.equal(nestsDeeperThan(JSON.stringify([[['\\"[[[[']]]), 2), true)
  })

  test('an unterminated string ends the scan without throwing', () => {
    assert.equal(nestsDeeperThan('[' + '['.repeat(300) + '"abc', 10), true)
    assert.equal(nestsDeeperThan('"' + '['.repeat(300), 10), false)
  })
})

describe('the JSON body parser', () => {
  test(`a body nested ${MAX_JSON_DEPTH} deep reaches validation; one level more is refused as JSON`, async (t) => {
    const { app, key } = await buildTestApp(t)
    const k = await key('alpha')
    const post = (payload: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        payload,
      })
    const atLimit = await post(`{"field_name":["user_id"],"values":[${nested(MAX_JSON_DEPTH - 2)}]}`)
    assert.equal(atLimit.statusCode, 400)
    assert.match((atLimit.json() as { msg: string }).msg, /^values\[0\]/)
    const past = await post(`{"field_name":["user_id"],"values":[${nested(MAX_JSON_DEPTH - 1)}]}`)
    assert.equal(past.statusCode, 400)
    assert.equal((past.json() as { msg: string }).msg, `Request body nests deeper than ${MAX_JSON_DEPTH} levels`)
  })
})

describe('holdsMoreValuesThan', () => {
  test('counts values outside strings, at the limit and one past it', () => {
    const array = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => i))
    // n numbers in one array: n - 1 commas and 1 bracket.
    assert.equal(holdsMoreValuesThan(array(100), 100), false)
    assert.equal(holdsMoreValuesThan(array(101), 100), true)
    const keys = (n: number) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 1])))
    assert.equal(holdsMoreValuesThan(keys(100), 100), false)
    assert.equal(holdsMoreValuesThan(keys(101), 100), true)
  })

  test('commas and brackets inside strings do not count, escaped quotes included', () => {
    const text = JSON.stringify(['a,b,[c]{d}'.repeat(1000), 'x\\",[,', 'y'])
    assert.equal(holdsMoreValuesThan(text, 3), false)
    assert.equal(holdsMoreValuesThan(text, 2), true)
  })

  test('the largest valid upload and segment condition fit', () => {
    const upload = JSON.stringify({
      field_name: Array.from({ length: 50 }, (_, i) => `f${i}`),
      values: Array.from({ length: 100 }, () => Array.from({ length: 50 }, () => 'v,,,,')),
    })
    assert.equal(holdsMoreValuesThan(upload, MAX_JSON_VALUES), false)
    const where = {
      any: Array.from({ length: 100 }, () => ({ field: 'user_id', op: 'in', value: Array(1000).fill('x') })),
    }
    assert.equal(holdsMoreValuesThan(JSON.stringify({ where }), MAX_JSON_VALUES), false)
  })
})
