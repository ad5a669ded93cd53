import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cursorScope, decodeCursor, decodeCursorState, encodeCursor } from './cursor.js'

const scope = cursorScope(1, { kind: 'all', of: [] })

test('cursors round-trip any user id and are URL-safe', () => {
  for (const id of ['u1', 'a b/c+d', '😀\uE000é', '"\'\\', 'x:y', 'x'.repeat(300)]) {
    const c = encodeCursor(id, scope)
    assert.match(c, /^[A-Za-z0-9_-]+$/)
    assert.deepEqual(decodeCursor(c, scope), { ok: true, value: id })
  }
})

test('a cursor made for another project or condition is refused, naming why', () => {
  const c = encodeCursor('u1', scope)
  for (const other of [cursorScope(2, { kind: 'all', of: [] }), cursorScope(1, { kind: 'any', of: [] })]) {
    assert.notEqual(other, scope)
    const r = decodeCursor(c, other)
    assert.ok(!r.ok)
    assert.match(r.error[0]?.message ?? '', /another query or project/)
  }
})

test('cursors from before fingerprints (k1) are still accepted', () => {
  const legacy = btoa('k1:u7').replace(/=+$/, '')
  assert.deepEqual(decodeCursor(legacy, scope), { ok: true, value: 'u7' })
})

test('anything else is an invalid_value issue at the given path', () => {
  const notUtf8 = btoa('k2:00000000:\xff\xfe').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
  for (const c of [
    '',
    'u1',
    '!!!',
    'a',
    btoa('x1:u1').replace(/=+$/, ''),
    btoa('k1:').replace(/=+$/, ''),
    btoa(`k2:${scope}:`).replace(/=+$/, ''),
    btoa(`k2:${scope}`).replace(/=+$/, ''),
    notUtf8,
    'A'.repeat(2000),
  ]) {
    const r = decodeCursor(c, scope, 'cursor')
    assert.ok(!r.ok, JSON.stringify(c))
    assert.equal(r.error[0]?.path, 'cursor')
    assert.equal(r.error[0]?.code, 'invalid_value')
  }
})

test('a cursor can carry the moment its walk began (k3); a forged or overflowing one is refused', () => {
  const scope = cursorScope(3, { field: 'd', op: 'before', value: '2025-03-01' })
  const c = encodeCursor('u:7', scope, 1_740_821_400_000)
  assert.deepEqual(decodeCursorState(c, scope), { ok: true, value: { afterUserId: 'u:7', now: 1_740_821_400_000 } })
  assert.deepEqual(decodeCursor(c, scope), { ok: true, value: 'u:7' })
  assert.deepEqual(decodeCursorState(encodeCursor('u1', scope), scope), { ok: true, value: { afterUserId: 'u1' } })
  const forge = (text: string) => btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
  for (const bad of [`k3:${scope}:99999999999999999:u1`, `k3:${scope}:-5:u1`, `k3:${scope}:12:`, `k3:${scope}:01:u1`])
    assert.equal(decodeCursorState(forge(bad), scope).ok, false, bad)
})
