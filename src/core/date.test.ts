import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  civilFromDay,
  dayFromCivil,
  firstDayFrom,
  formatDay,
  formatInstant,
  midnightOf,
  normalizeTimeZone,
  parseDateValue,
  shiftInstant,
  wallToInstant,
} from './date.js'

const utc = (s: string) => Date.parse(s)

describe('the date rule', () => {
  test('calendar dates are days; leap days only in leap years', () => {
    assert.deepEqual(parseDateValue('1970-01-01'), { kind: 'day', day: 0 })
    assert.deepEqual(parseDateValue('2025-03-01'), { kind: 'day', day: utc('2025-03-01T00:00:00Z') / 86_400_000 })
    assert.deepEqual(parseDateValue('2024-02-29'), { kind: 'day', day: utc('2024-02-29T00:00:00Z') / 86_400_000 })
    assert.deepEqual(parseDateValue('2000-02-29')?.kind, 'day')
    assert.deepEqual(parseDateValue('0000-02-29')?.kind, 'day', 'year 0 is a leap year (proleptic Gregorian)')
    for (const v of ['2025-02-29', '1900-02-29', '2025-02-30', '2025-04-31', '2025-13-01', '2025-00-10', '2025-01-00'])
      assert.equal(parseDateValue(v), undefined, v)
  })

  test('date-times are instants in milliseconds; fraction digits past the third are dropped', () => {
    const at = (v: string) => {
      const d = parseDateValue(v)
      return d?.kind === 'instant' ? d.ms : d
    }
    assert.equal(at('2025-03-01T09:30:00Z'), utc('2025-03-01T09:30:00Z'))
    assert.equal(at('2025-03-01T09:30Z'), utc('2025-03-01T09:30:00Z'))
    assert.equal(at('2025-03-01T18:30:00+09:00'), utc('2025-03-01T09:30:00Z'))
    assert.equal(at('2025-03-01T09:30:00.5Z'), utc('2025-03-01T09:30:00.500Z'))
    assert.equal(at('2025-03-01T09:30:00.9999999Z'), utc('2025-03-01T09:30:00.999Z'))
    assert.equal(at('2025-03-01T00:00:00+14:00'), utc('2025-02-28T10:00:00Z'))
    assert.equal(at('2025-03-01T00:00:00-14:00'), utc('2025-03-01T14:00:00Z'))
    assert.equal(at('2025-03-01T00:00:00-00:00'), utc('2025-03-01T00:00:00Z'))
    // The well-known epoch offset of 0000-01-01 (year 0 = 1 BC).
    assert.equal(at('0000-01-01T00:00:00Z'), -62_167_219_200_000)
  })

  test('anything else is not a date', () => {
    for (const v of [
      '2025-03-01T24:00:00Z',
      '2025-03-01T24:00Z',
      '2025-03-01T23:59:60Z',
      '2025-03-01T09:30:00+14:01',
      '2025-03-01T09:30:00+15:00',
      '2025-03-01T09:30:00+0900',
      '2025-03-01T09:30:00+09',
      '2025-03-01T09:30:00',
      '2025-03-01T09:30:00z',
      '2025-03-01t09:30:00Z',
      '2025-03-01 09:30:00Z',
      '2025-03-01T09:30:00,5Z',
      '2025-03-01T09:30:00.Z',
      '2025-03-01T9:30:00Z',
      '2025-3-1',
      '2025-03-1',
      '2025-W09',
      '2025-W09-6',
      '2025-060',
      '20250301',
      '+12025-03-01',
      '-2025-03-01',
      '2025-03-01Z',
      ' 2025-03-01',
      '2025-03-01\n',
      '２０２５-03-01',
      '2025-02-30T00:00:00Z',
      '',
    ])
      assert.equal(parseDateValue(v), undefined, JSON.stringify(v))
  })

  test('day numbers agree with the proleptic calendar both ways (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -800_000, max: 3_000_000 }), (day) => {
        const { y, m, d } = civilFromDay(day)
        assert.equal(dayFromCivil(y, m, d), day)
        if (y >= 0 && y <= 9999) assert.deepEqual(parseDateValue(formatDay(day)), { kind: 'day', day })
      }),
    )
    assert.equal(formatInstant(utc('2025-03-01T09:30:00.5Z')), '2025-03-01T09:30:00.500Z')
  })
})

describe('time zones', () => {
  test('names are IANA zones in canonical spelling; offsets and unknown names are refused', () => {
    assert.equal(normalizeTimeZone('UTC'), 'UTC')
    assert.equal(normalizeTimeZone('asia/tokyo'), 'Asia/Tokyo')
    assert.equal(normalizeTimeZone('America/New_York'), 'America/New_York')
    for (const bad of ['', 'Mars/Olympus', '+09:00', 'UTC+9', 'Asia/Tokyo ', 'x'.repeat(100)])
      assert.equal(normalizeTimeZone(bad), undefined, bad)
  })

  test('a bare date is local midnight: Asia/Tokyo is nine hours before UTC', () => {
    const day = dayFromCivil(2025, 3, 1)
    assert.equal(midnightOf('UTC', day), utc('2025-03-01T00:00:00Z'))
    assert.equal(midnightOf('Asia/Tokyo', day), utc('2025-02-28T15:00:00Z'))
    // The first day starting at or after an instant.
    assert.equal(firstDayFrom('Asia/Tokyo', utc('2025-02-28T15:00:00Z')), day)
    assert.equal(firstDayFrom('Asia/Tokyo', utc('2025-02-28T15:00:00.001Z')), day + 1)
    assert.equal(firstDayFrom('UTC', utc('2025-02-28T15:00:00Z')), day)
  })

  test('daylight saving: a skipped wall time lands after the gap, a repeated one takes the earlier instant', () => {
    // New York, 2025-03-09 02:30 does not exist; 2025-11-02 01:30 happens twice.
    assert.equal(wallToInstant('America/New_York', utc('2025-03-09T02:30:00Z')), utc('2025-03-09T07:30:00Z'))
    assert.equal(wallToInstant('America/New_York', utc('2025-11-02T01:30:00Z')), utc('2025-11-02T05:30:00Z'))
    // Havana skips midnight itself on 2025-03-09: the day starts at 01:00 local.
    assert.equal(midnightOf('America/Havana', dayFromCivil(2025, 3, 9)), utc('2025-03-09T05:00:00Z'))
  })

  test('minutes and hours are durations; days, weeks and months are calendar steps in the zone', () => {
    const now = utc('2025-03-10T12:00:00Z') // 08:00 in New York (EDT), the day after the change
    assert.equal(shiftInstant(now, -90, 'minutes', 'America/New_York'), utc('2025-03-10T10:30:00Z'))
    assert.equal(shiftInstant(now, -24, 'hours', 'America/New_York'), utc('2025-03-09T12:00:00Z'))
    // One day back is 08:00 EDT on the 9th too; two days back is 08:00 EST on the 8th: 13:00Z.
    assert.equal(shiftInstant(now, -1, 'days', 'America/New_York'), utc('2025-03-09T12:00:00Z'))
    assert.equal(shiftInstant(now, -2, 'days', 'America/New_York'), utc('2025-03-08T13:00:00Z'))
    assert.equal(shiftInstant(now, -1, 'weeks', 'America/New_York'), utc('2025-03-03T13:00:00Z'))
    // Month ends clamp: March 31 − 1 month = February 28 (29 in a leap year); Jan 31 + 1 month likewise.
    assert.equal(shiftInstant(utc('2025-03-31T12:00:00Z'), -1, 'months', 'UTC'), utc('2025-02-28T12:00:00Z'))
    assert.equal(shiftInstant(utc('2024-03-31T12:00:00Z'), -1, 'months', 'UTC'), utc('2024-02-29T12:00:00Z'))
    assert.equal(shiftInstant(utc('2025-01-31T12:00:00Z'), 1, 'months', 'UTC'), utc('2025-02-28T12:00:00Z'))
    assert.equal(shiftInstant(utc('2025-01-15T12:00:00Z'), -13, 'months', 'UTC'), utc('2023-12-15T12:00:00Z'))
    // In Tokyo it is already April 1st at 2025-03-31T16:00Z: one month back is March 1st, 01:00 local.
    assert.equal(shiftInstant(utc('2025-03-31T16:00:00Z'), -1, 'months', 'Asia/Tokyo'), utc('2025-02-28T16:00:00Z'))
  })
})
