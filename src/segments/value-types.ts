import { parseDateValue, type DateValue } from '../core/date.js'
import { parseNumericText } from '../core/segment.js'

/**
 * What a stored value looks like, for the typed catalog: a number under the number rule, `true` or
 * `false`, a date under the date rule, else a string. The kinds are disjoint (no number has a `-`
 * after four digits, no date is `true`). Dates keep their two forms apart: an instant compares with
 * instants, a bare date's midnight depends on the project's zone.
 */
export const KIND_ABSENT = 0
export const KIND_STRING = 1
export const KIND_NUMBER = 2
export const KIND_BOOLEAN = 3
export const KIND_INSTANT = 4
export const KIND_DAY = 5

/** The kind of a value; `number`/`date` hold its number (the double, epoch ms, or day number). */
export function kindOf(value: string): { kind: number; number: number } {
  const n = parseNumericText(value)
  if (n !== undefined) return { kind: KIND_NUMBER, number: n }
  if (value === 'true' || value === 'false') return { kind: KIND_BOOLEAN, number: NaN }
  const d: DateValue | undefined = parseDateValue(value)
  if (d !== undefined)
    return d.kind === 'instant' ? { kind: KIND_INSTANT, number: d.ms } : { kind: KIND_DAY, number: d.day }
  return { kind: KIND_STRING, number: NaN }
}

/** Users per kind of value held, and the extremes of numbers, instants and days (±Infinity when none). */
export class ValueTypes {
  strings = 0
  numbers = 0
  booleans = 0
  dates = 0
  numberMin = Infinity
  numberMax = -Infinity
  instantMin = Infinity
  instantMax = -Infinity
  dayMin = Infinity
  dayMax = -Infinity

  /** Counts `users` holding a value of `kind` whose number is `n`. */
  add(kind: number, n: number, users: number): void {
    switch (kind) {
      case KIND_STRING:
        this.strings += users
        break
      case KIND_NUMBER:
        this.numbers += users
        if (n < this.numberMin) this.numberMin = n
        if (n > this.numberMax) this.numberMax = n
        break
      case KIND_BOOLEAN:
        this.booleans += users
        break
      case KIND_INSTANT:
        this.dates += users
        if (n < this.instantMin) this.instantMin = n
        if (n > this.instantMax) this.instantMax = n
        break
      case KIND_DAY:
        this.dates += users
        if (n < this.dayMin) this.dayMin = n
        if (n > this.dayMax) this.dayMax = n
        break
      default:
        break
    }
  }
}
