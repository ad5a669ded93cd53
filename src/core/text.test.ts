import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { codePointLength, compareCodePoints, fitsCodePoints } from './text.js'

describe('codePointLength', () => {
  test('counts code points, not UTF-16 units', () => {
    assert.equal(codePointLength(''), 0)
    assert.equal(codePointLength('abc'), 3)
    assert.equal(codePointLength('漢字'), 2)
    assert.equal(codePointLength('😀😀'), 2)
    assert.equal(codePointLength('a😀b'), 3)
  })

  test('a lone surrogate counts as one', () => {
    assert.equal(codePointLength('\ud800'), 1)
    assert.equal(codePointLength('\udc00\ud800'), 2)
    assert.equal(codePointLength('a\ud83d'), 2)
  })

  test('property: equals the length of the code point array', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 50 }), (s) => {
        assert.equal(codePointLength(s), [...s].length)
      }),
    )
  })
})

describe('fitsCodePoints', () => {
  test('at the limit and one past it', () => {
    assert.equal(fitsCodePoints('😀'.repeat(128), 128), true)
    assert.equal(fitsCodePoints('😀'.repeat(129), 128), false)
    assert.equal(fitsCodePoints('a'.repeat(128), 128), true)
    assert.equal(fitsCodePoints('a'.repeat(129), 128), false)
  })
})

describe('compareCodePoints', () => {
  test('orders astral characters after the end of the BMP, like UTF-8 bytes do', () => {
    assert.ok(compareCodePoints('\uffff', '😀') < 0)
    assert.ok('\uffff' > '😀', 'plain < on JS strings gets this wrong, which is why the function exists')
    assert.ok(compareCodePoints('a', 'b') < 0)
    assert.ok(compareCodePoints('ab', 'a') > 0)
    assert.equal(compareCodePoints('漢', '漢'), 0)
  })

  test('property: same sign as comparing the UTF-8 bytes', () => {
    const s = fc.string({ unit: 'binary', maxLength: 8 })
    fc.assert(
      fc.property(s, s, (a, b) => {
        assert.equal(Math.sign(compareCodePoints(a, b)), Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))))
      }),
      { numRuns: 1000 },
    )
  })
})
