import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { findDuplicateKey } from './json-text.js'

const HOT = ['field_name', 'values']

describe('findDuplicateKey', () => {
  test('finds nothing in bodies without repeats', () => {
    assert.equal(findDuplicateKey('{"field_name":["user_id"],"values":[["u"]]}', HOT), undefined)
    assert.equal(findDuplicateKey('{"a":{"b":1},"c":{"b":2}}'), undefined)
    assert.equal(findDuplicateKey('[{"a":1},{"a":2}]'), undefined)
    assert.equal(findDuplicateKey('"just a string"'), undefined)
  })

  test('finds a repeated top-level key, on the fast path and the full scan', () => {
    const text = '{"field_name":["user_id"],"values":[["u"]],"field_name":["user_id"]}'
    assert.equal(findDuplicateKey(text, HOT), 'field_name')
    assert.equal(findDuplicateKey(text), 'field_name')
    assert.equal(findDuplicateKey('{"values":[],"values":[]}', HOT), 'values')
  })

  test('a hot key spelled inside a value is not a repeat', () => {
    assert.equal(
      findDuplicateKey('{"field_name":["user_id","field_name"],"values":[["u","field_name"]]}', HOT),
      undefined,
    )
  })

  test('finds repeats inside nested objects, not across siblings', () => {
    assert.equal(findDuplicateKey('{"where":{"all":[{"field":"a","field":"b"}]}}', HOT), 'field')
    assert.equal(findDuplicateKey('{"a":{"x":1,"y":{"x":2}},"b":1}'), undefined)
  })

  test('escaped spellings of the same key are the same key', () => {
    assert.equal(findDuplicateKey('{"values":[],"v\\u0061lues":[]}', HOT), 'values')
    assert.equal(findDuplicateKey('{"a\\"b":1,"a\\u0022b":2}'), 'a"b')
  })

  test('braces, brackets, commas and escaped quotes inside strings do not confuse it', () => {
    assert.equal(findDuplicateKey('{"a":"}{,[\\"","b":"]\\\\","c":1}'), undefined)
    assert.equal(findDuplicateKey('{"a":"}{,[\\"","b":"]\\\\","a":1}'), 'a')
  })

  test('deep nesting is scanned without recursion', () => {
    const depth = 100_000
    const text = '{"k":'.repeat(depth) + '1' + '}'.repeat(depth)
    assert.equal(findDuplicateKey(text, HOT), undefined)
    const dup = '['.repeat(depth) + '{"a":1,"a":2}' + ']'.repeat(depth)
    assert.equal(findDuplicateKey(dup), 'a')
  })

  test('the fast path skips only repeats that upload validation refuses anyway (unknown keys of a flat object)', () => {
    assert.equal(findDuplicateKey('{"x":1,"x":2}', HOT), undefined)
    assert.equal(findDuplicateKey('{"x":1,"x":2}'), 'x')
    assert.equal(findDuplicateKey('{"x":{},"x":2}', HOT), 'x')
  })

  test('property: the full scan finds exactly the appended repeat; the fast path agrees whenever the key is hot', () => {
    const json = fc.jsonValue({ maxDepth: 3 })
    const key = fc.oneof(fc.string({ maxLength: 3 }), fc.constantFrom(...HOT))
    const withDup = fc.tuple(json, key).map(([v, k]) => {
      const body = JSON.stringify({ [k]: v })
      return { text: body.slice(0, -1) + `,${JSON.stringify(k)}:0}`, key: k }
    })
    fc.assert(
      fc.property(json, (v) => {
        assert.equal(findDuplicateKey(JSON.stringify(v), HOT), undefined)
        assert.equal(findDuplicateKey(JSON.stringify(v)), undefined)
      }),
      { numRuns: 300 },
    )
    fc.assert(
      fc.property(withDup, ({ text, key }) => {
        assert.equal(findDuplicateKey(text), key)
        if (HOT.includes(key)) assert.equal(findDuplicateKey(text, HOT), key)
      }),
      { numRuns: 300 },
    )
  })
})
