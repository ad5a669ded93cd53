import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MALFORMED_QUERY, parseQueryString } from './query.js'

test('repeated keys become arrays, + is a space, a bare key is empty, the result has no prototype', () => {
  const q = parseQueryString('a=1&a=2&b&c=x+y%2By&__proto__=p&&d=%F0%9F%98%80')
  assert.deepEqual(Object.entries(q), [
    ['a', ['1', '2']],
    ['b', ''],
    ['c', 'x y+y'],
    ['__proto__', 'p'],
    ['d', '😀'],
  ])
  assert.equal(Object.getPrototypeOf(q), null)
  assert.deepEqual({ ...parseQueryString('') }, {})
})

test('a malformed escape or bytes that are not UTF-8 mark the whole query as malformed', () => {
  for (const bad of ['a=%zz', '%zz=1', 'a=%FF', 'a=1&b=%', 'a=%E0%A4']) {
    assert.equal(parseQueryString(bad)[MALFORMED_QUERY], true, bad)
  }
  assert.equal(parseQueryString('a=%25zz')[MALFORMED_QUERY], undefined)
})
