import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-body.js'
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
