import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseUploadBody } from '../../src/core/upload.js'
import {
  BENCH_FIELDS,
  generateLoadBody,
  generatePreloadBatch,
  NEW_USERS_PER_REQUEST,
  USERS_PER_REQUEST,
  userIdOf,
} from './profile-generator.js'

describe('generateLoadBody', () => {
  test('is a valid 100-user × 10-attribute upload', () => {
    const body = generateLoadBody(3, 1000, 1)
    assert.deepEqual(body.field_name, BENCH_FIELDS)
    assert.equal(BENCH_FIELDS.length, 11)
    assert.equal(body.values.length, USERS_PER_REQUEST)
    const parsed = parseUploadBody(JSON.parse(JSON.stringify(body)))
    assert.ok(parsed.ok, JSON.stringify(parsed))
    assert.equal(parsed.value.rows, USERS_PER_REQUEST)
  })

  test('is the same for the same k, whatever order requests are built in', () => {
    const later = JSON.stringify(generateLoadBody(7, 0, 9))
    generateLoadBody(1, 0, 9)
    assert.equal(JSON.stringify(generateLoadBody(7, 0, 9)), later)
    assert.notEqual(JSON.stringify(generateLoadBody(8, 0, 9)), later)
  })

  test('first half creates the next users in sequence, the rest update users that exist by then', () => {
    const preload = 500
    const k = 4
    const body = generateLoadBody(k, preload, 1)
    const existing = preload + k * NEW_USERS_PER_REQUEST
    const newIds = Array.from({ length: NEW_USERS_PER_REQUEST }, (_, j) => userIdOf(existing + j))
    assert.deepEqual(
      body.values.slice(0, NEW_USERS_PER_REQUEST).map((r) => r[0]),
      newIds,
    )
    const known = new Set(Array.from({ length: existing }, (_, i) => userIdOf(i)))
    for (const row of body.values.slice(NEW_USERS_PER_REQUEST)) assert.ok(known.has(row[0] as string))
  })

  test('request 0 on an empty store only touches its own new users', () => {
    const body = generateLoadBody(0, 0, 1)
    const own = new Set(Array.from({ length: NEW_USERS_PER_REQUEST }, (_, j) => userIdOf(j)))
    for (const row of body.values) assert.ok(own.has(row[0] as string))
  })

  test('distributions: about 2 % empty cells, 5 % VIPs, ages 18–80, plan has 4 values', () => {
    let cells = 0
    let empty = 0
    let vip = 0
    let vipKnown = 0
    const plans = new Set<string>()
    for (let k = 0; k < 300; k++) {
      for (const row of generateLoadBody(k, 10_000, 1).values) {
        for (const v of row.slice(1)) {
          cells++
          if (v === '') empty++
        }
        const [, plan, , , , , isVip, age] = row
        if (plan !== '') plans.add(plan as string)
        if (isVip !== '') {
          vipKnown++
          if (isVip === true) vip++
        }
        if (age !== '') assert.ok((age as number) >= 18 && (age as number) <= 80)
      }
    }
    assert.ok(Math.abs(empty / cells - 0.02) < 0.004, `empty share ${empty / cells}`)
    assert.ok(Math.abs(vip / vipKnown - 0.05) < 0.01, `vip share ${vip / vipKnown}`)
    assert.deepEqual([...plans].sort(), ['basic', 'enterprise', 'free', 'pro'])
  })
})

describe('generatePreloadBatch', () => {
  test('covers exactly the requested users, sorted, with "" as null', () => {
    const batch = generatePreloadBatch(100, 5000, 1)
    assert.equal(batch.rows, 5000)
    assert.equal(batch.patches.length, 5000)
    const ids = batch.patches.map((p) => p.userId)
    assert.deepEqual(new Set(ids), new Set(Array.from({ length: 5000 }, (_, i) => userIdOf(100 + i))))
    assert.deepEqual(ids, [...ids].sort())
    let nulls = 0
    for (const p of batch.patches) {
      assert.equal(Object.keys(p.attributes).length, 10)
      for (const v of Object.values(p.attributes)) if (v === null) nulls++
    }
    assert.ok(nulls > 500 && nulls < 1500, `${nulls} nulls of 50000`)
  })
})
