import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isStoreUnavailable } from './unavailable.js'

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code })

test('database outages and locks are "unavailable"; our faults and bad input are not', () => {
  for (const e of [
    withCode('ECONNREFUSED'),
    withCode('08006'),
    withCode('57P01'),
    withCode('3D000'),
    withCode('53300'),
    withCode('SQLITE_BUSY'),
    withCode('SQLITE_BUSY_SNAPSHOT'),
    withCode('SQLITE_IOERR_WRITE'),
    withCode('SQLITE_FULL'),
    new Error('Connection terminated unexpectedly'),
    new AggregateError([withCode('ECONNREFUSED')], 'connect failed'),
    new Error('wrapped', { cause: withCode('ETIMEDOUT') }),
  ]) {
    assert.equal(isStoreUnavailable(e), true, `${(e as { code?: string }).code ?? e.message}`)
  }
  for (const e of [
    withCode('23505'), // unique violation
    withCode('22P02'), // invalid text representation
    withCode('SQLITE_CONSTRAINT_PRIMARYKEY'),
    withCode('SQLITE_ERROR'),
    new TypeError('undefined is not a function'),
    'ECONNREFUSED',
    undefined,
  ]) {
    assert.equal(isStoreUnavailable(e), false, String(e))
  }
})
