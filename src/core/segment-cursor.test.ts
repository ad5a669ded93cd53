import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeCursor, encodeCursor } from './cursor.js'

test('cursors round-trip any user id and are URL-safe', () => {
  for (const id of ['u1', 'a b/c+d', '😀\uE000é', '"\'\\', 'x'.repeat(300)]) {
    const c = encodeCursor(id)
    assert.match(c, /^[A-Za-z0-9_-]+$/)
    assert.deepEqual(decodeCursor(c), { ok: true, value: id })
  }
})

test('anything else is an invalid_value issue at the given path', () => {
  const notUtf8 = btoa('k1:\xff\xfe').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
  for (const c of [
    '',
    'u1',
    '!!!',
    'a',
    btoa('x1:u1').replace(/=+$/, ''),
    btoa('k1:').replace(/=+$/, ''),
    notUtf8,
    'A'.repeat(2000),
  ]) {
    const r = decodeCursor(c, 'cursor')
    assert.ok(!r.ok, JSON.stringify(c))
    assert.equal(r.error[0]?.path, 'cursor')
    assert.equal(r.error[0]?.code, 'invalid_value')
  }
})
