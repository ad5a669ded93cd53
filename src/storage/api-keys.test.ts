import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { generateApiKey, hashApiKey, looksLikeApiKey, newKeyId, newSegmentId, timingSafeEqual } from './api-keys.js'

describe('api keys', () => {
  test('a generated secret has the prefix, 43 base64url characters and the hash of itself', () => {
    const { secret, hash } = generateApiKey()
    assert.match(secret, /^tbk_[A-Za-z0-9_-]{43}$/)
    assert.equal(hash, hashApiKey(secret))
    assert.match(hash, /^[0-9a-f]{64}$/)
    assert.ok(looksLikeApiKey(secret))
  })

  test('secrets are unique', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 1000; i++) seen.add(generateApiKey().secret)
    assert.equal(seen.size, 1000)
  })

  test('hashApiKey is sha256 hex', () => {
    assert.equal(hashApiKey('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  test('looksLikeApiKey refuses near misses', () => {
    const { secret } = generateApiKey()
    assert.equal(looksLikeApiKey(secret.slice(0, -1)), false)
    assert.equal(looksLikeApiKey(secret + 'a'), false)
    assert.equal(looksLikeApiKey('tbx_' + secret.slice(4)), false)
    assert.equal(looksLikeApiKey(secret.slice(0, -1) + '+'), false)
    assert.equal(looksLikeApiKey(''), false)
    assert.equal(looksLikeApiKey(`Bearer ${secret}`), false)
  })

  test('ids have their prefixes and 16 hex characters', () => {
    assert.match(newKeyId(), /^key_[0-9a-f]{16}$/)
    assert.match(newSegmentId(), /^seg_[0-9a-f]{16}$/)
    assert.notEqual(newKeyId(), newKeyId())
  })

  test('timingSafeEqual compares hashes', () => {
    const h = hashApiKey('x')
    assert.equal(timingSafeEqual(h, hashApiKey('x')), true)
    assert.equal(timingSafeEqual(h, hashApiKey('y')), false)
    assert.equal(timingSafeEqual(h, h.slice(0, -2)), false)
    assert.equal(timingSafeEqual(h, h.toUpperCase()), false)
    assert.equal(timingSafeEqual('', ''), false)
  })
})
