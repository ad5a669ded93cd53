import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ERROR_STATUS, TraitbaseError, validationError, type ErrorCode } from './errors.js'

describe('TraitbaseError', () => {
  test('its status comes from the one table', () => {
    for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
      const e = new TraitbaseError(code, 'm')
      assert.equal(e.status, ERROR_STATUS[code])
      assert.equal(e.code, code)
      assert.equal(e.name, 'TraitbaseError')
      assert.ok(e instanceof Error)
    }
  })

  test('every status is a client (4xx) or server (5xx) error', () => {
    for (const status of Object.values(ERROR_STATUS)) assert.ok(status >= 400 && status <= 599, String(status))
  })

  test('codes are SCREAMING_SNAKE', () => {
    for (const code of Object.keys(ERROR_STATUS)) assert.match(code, /^[A-Z]+(_[A-Z]+)*$/)
  })

  test('keeps the cause and the issues', () => {
    const cause = new Error('inner')
    const issues = [{ code: 'required' as const, path: 'values', message: 'is required' }]
    const e = new TraitbaseError('VALIDATION_FAILED', 'bad', { issues, cause })
    assert.equal(e.cause, cause)
    assert.deepEqual(e.issues, issues)
    assert.equal(new TraitbaseError('NOT_FOUND', 'x').cause, undefined)
  })
})

describe('validationError', () => {
  test('a 400 whose message names the first issue by path, listing all', () => {
    const issues = [
      { code: 'too_big' as const, path: 'values[3][1]', message: 'value is longer than 128 characters' },
      { code: 'required' as const, path: 'field_name', message: 'is required' },
    ]
    const e = validationError(issues)
    assert.equal(e.status, 400)
    assert.equal(e.code, 'VALIDATION_FAILED')
    assert.equal(e.message, 'values[3][1]: value is longer than 128 characters')
    assert.equal(e.issues?.length, 2)
  })

  test('without issues it still says something', () => {
    assert.equal(validationError([]).message, 'Invalid request')
  })
})
