/**
 * The date rule of segments, and the calendar arithmetic of date conditions.
 *
 * A stored value is a date when it matches {@link DATE_PATTERN} (a calendar date, `2025-03-01`) or
 * {@link DATE_TIME_PATTERN} (`2025-03-01T09:30Z`, `…T09:30:00.5+09:00`) and names a real day. Both
 * are plain regular expressions that mean the same in JavaScript and in PostgreSQL; the rest
 * (day-of-month check, epoch arithmetic) is integer arithmetic written out identically in
 * {@link parseDateValue} and the SQL functions of the stores, with no time zone in it:
 *
 * - a date-time is an instant: milliseconds since 1970-01-01T00:00Z (fraction digits past the
 *   third are dropped, not rounded: dates compare at millisecond precision);
 * - a bare date is a day number (days since 1970-01-01). Which instant its midnight is depends on
 *   the project's time zone, so conditions are turned into a {@link DateWindow} holding both an
 *   instant range and a day range before any evaluator sees them: the zone is applied once, here,
 *   and SQLite, PostgreSQL and the in-memory index only compare numbers.
 *
 * Not dates: `2025-02-30`, `2025-3-1`, week dates (`2025-W09`), ordinal dates (`2025-060`), basic
 * format (`20250301`), `24:00`, leap seconds (`:60`), a date-time without offset, lower-case `t`/`z`,
 * a space for `T`, a comma before the fraction, offsets beyond ±14:00 or without a colon, years
 * outside 0000–9999.
 */

/** A calendar date, `YYYY-MM-DD`. */
export const DATE_PATTERN = '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
/** A date-time with `Z` or a `±hh:mm` offset of at most 14:00; seconds and a fraction optional. */
export const DATE_TIME_PATTERN =
  '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$'

const DATE_RE = new RegExp(DATE_PATTERN)
const DATE_TIME_RE = new RegExp(DATE_TIME_PATTERN)

export const MS_PER_DAY = 86_400_000

/** A stored value as a date: an instant (date-time) or a day (bare date). */
export type DateValue =
  { readonly kind: 'instant'; readonly ms: number } | { readonly kind: 'day'; readonly day: number }

function digits(s: string, from: number, length: number): number {
  let n = 0
  for (let i = from; i < from + length; i++) n = n * 10 + (s.charCodeAt(i) - 48)
  return n
}

/** True when year `y` is a Gregorian leap year (year 0 is one, as in ISO 8601's proleptic calendar). */
export function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
}

/** Days in month `m` (1–12) of year `y`. */
export function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeapYear(y) ? 29 : 28) : 30 + ((m + Math.floor(m / 8)) % 2)
}

/**
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). The year is
 * shifted by 400 (one full cycle, 146097 days) so every division is of non-negative numbers and
 * truncating and flooring agree: the SQL versions rely on that.
 */
export function dayFromCivil(y: number, m: number, d: number): number {
  const yy = y + 400 - (m <= 2 ? 1 : 0)
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468 - 146097
}

/** The calendar date of day number `day`. */
export function civilFromDay(day: number): { y: number; m: number; d: number } {
  const z = day + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d }
}

/** The date a text stands for under the date rule, or undefined when it is not a date. */
export function parseDateValue(text: string): DateValue | undefined {
  // Cheap pre-check first: most values of most attributes are not dates.
  if (text.length < 10 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45) return undefined
  const bare = text.length === 10
  if (bare ? !DATE_RE.test(text) : !DATE_TIME_RE.test(text)) return undefined
  const y = digits(text, 0, 4)
  const m = digits(text, 5, 2)
  const d = digits(text, 8, 2)
  if (d > daysInMonth(y, m)) return undefined
  const day = dayFromCivil(y, m, d)
  if (bare) return { kind: 'day', day }
  let ms = day * MS_PER_DAY + digits(text, 11, 2) * 3_600_000 + digits(text, 14, 2) * 60_000
  const zulu = text.endsWith('Z')
  const end = text.length - (zulu ? 1 : 6)
  if (text.charCodeAt(16) === 58) {
    ms += digits(text, 17, 2) * 1000
    if (text.charCodeAt(19) === 46) {
      const fraction = text.slice(20, Math.min(end, 23)).padEnd(3, '0')
      ms += digits(fraction, 0, 3)
    }
  }
  if (!zulu) {
    const offset = (digits(text, end + 1, 2) * 60 + digits(text, end + 4, 2)) * 60_000
    ms += text.charCodeAt(end) === 43 ? -offset : offset
  }
  return { kind: 'instant', ms }
}

/** `YYYY-MM-DD` of a day number (years 0000–9999). */
export function formatDay(day: number): string {
  const { y, m, d } = civilFromDay(day)
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`
}

/** ISO 8601 in UTC with milliseconds, years 0000–9999 (Date#toISOString writes ±YYYYYY outside 0–9999). */
export function formatInstant(ms: number): string {
  const day = Math.floor(ms / MS_PER_DAY)
  const rest = ms - day * MS_PER_DAY
  const hh = Math.floor(rest / 3_600_000)
  const mm = Math.floor((rest % 3_600_000) / 60_000)
  const ss = Math.floor((rest % 60_000) / 1000)
  const pad = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${formatDay(day)}T${pad(hh)}:${pad(mm)}:${pad(ss)}.${pad(rest % 1000, 3)}Z`
}

// ---------------------------------------------------------------------------------------------
// Time zones

/** The default project time zone. */
export const DEFAULT_TIME_ZONE = 'UTC'

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      hourCycle: 'h23',
    })
    formatters.set(timeZone, f)
  }
  return f
}

/**
 * The canonical spelling of an IANA time zone name (`asia/tokyo` → `Asia/Tokyo`), or undefined when
 * it is not one this runtime knows. Offsets (`+09:00`) are refused: a zone, not an offset, knows
 * about daylight saving time.
 */
export function normalizeTimeZone(name: string): string | undefined {
  if (name.length === 0 || name.length > 64 || !/^[A-Za-z][A-Za-z0-9_+/-]*$/.test(name)) return undefined
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone
  } catch {
    return undefined
  }
}

/** The zone's offset from UTC at instant `ms`, in milliseconds (wall clock − UTC). */
export function zoneOffset(timeZone: string, ms: number): number {
  if (timeZone === 'UTC') return 0
  const parts = formatterOf(timeZone).formatToParts(new Date(ms))
  let y = 0
  let mo = 0
  let d = 0
  let h = 0
  let mi = 0
  let s = 0
  let bc = false
  for (const p of parts) {
    switch (p.type) {
      case 'year':
        y = Number(p.value)
        break
      case 'month':
        mo = Number(p.value)
        break
      case 'day':
        d = Number(p.value)
        break
      case 'hour':
        h = Number(p.value)
        break
      case 'minute':
        mi = Number(p.value)
        break
      case 'second':
        s = Number(p.value)
        break
      case 'era':
        bc = p.value === 'BC' || p.value === 'B'
        break
      default:
        break
    }
  }
  if (bc) y = 1 - y
  const wall = dayFromCivil(y, mo, d) * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + s * 1000
  return wall - (ms - (((ms % 1000) + 1000) % 1000))
}

/**
 * The instant of wall-clock time `wall` (milliseconds as if the zone were UTC) in `timeZone`. A wall
 * time that happens twice (clocks set back) is the earlier instant; one that never happens (clocks
 * set forward) is read with the offset before the change, so it lands after the gap — the
 * "compatible" choice of RFC 9557 / Temporal, and what PostgreSQL does for a skipped local time.
 */
export function wallToInstant(timeZone: string, wall: number): number {
  if (timeZone === 'UTC') return wall
  const before = zoneOffset(timeZone, wall - MS_PER_DAY)
  const after = zoneOffset(timeZone, wall + MS_PER_DAY)
  const candidates: number[] = []
  for (const offset of before === after ? [before] : [before, after]) {
    const t = wall - offset
    if (zoneOffset(timeZone, t) === offset) candidates.push(t)
  }
  if (candidates.length === 0) return wall - before
  return Math.min(...candidates)
}

/** The instant local midnight of day number `day` begins in `timeZone`. */
export function midnightOf(timeZone: string, day: number): number {
  return wallToInstant(timeZone, day * MS_PER_DAY)
}

/** The local calendar day (day number) instant `ms` falls on in `timeZone`. */
export function dayOf(timeZone: string, ms: number): number {
  return Math.floor((ms + zoneOffset(timeZone, ms)) / MS_PER_DAY)
}

/** The first day whose midnight in `timeZone` is at or after instant `ms` (midnights only increase). */
export function firstDayFrom(timeZone: string, ms: number): number {
  if (ms === Infinity || ms === -Infinity) return ms
  let day = dayOf(timeZone, ms) - 1
  while (midnightOf(timeZone, day) < ms) day++
  return day
}

/** The instant a date bound stands for: a bare date is local midnight in the project's zone. */
export function instantOf(value: DateValue, timeZone: string): number {
  return value.kind === 'instant' ? value.ms : midnightOf(timeZone, value.day)
}

// ---------------------------------------------------------------------------------------------
// Windows

export type DateUnit = 'minutes' | 'hours' | 'days' | 'weeks' | 'months'
export const DATE_UNITS: readonly DateUnit[] = ['minutes', 'hours', 'days', 'weeks', 'months']

/**
 * Which dates a date condition matches, resolved for one moment and one zone: an instant `v`
 * matches when `from <= v < to`, a bare date `d` when `fromDay <= d < toDay` (±Infinity for an
 * open end). The two ranges say the same thing: `fromDay` is the first day whose local midnight
 * is at or after `from`.
 */
export interface DateWindow {
  readonly from: number
  readonly to: number
  readonly fromDay: number
  readonly toDay: number
}

/** The window of instants `[from, to)` in `timeZone`. */
export function windowOf(from: number, to: number, timeZone: string): DateWindow {
  return { from, to, fromDay: firstDayFrom(timeZone, from), toDay: firstDayFrom(timeZone, to) }
}

/** True when no date can be inside the window. */
export function isEmptyWindow(w: DateWindow): boolean {
  return w.from >= w.to && w.fromDay >= w.toDay
}

/** True when a stored value is a date inside the window. */
export function inWindow(value: DateValue | undefined, w: DateWindow): boolean {
  if (value === undefined) return false
  return value.kind === 'instant'
    ? value.ms >= w.from && value.ms < w.to
    : value.day >= w.fromDay && value.day < w.toDay
}

/**
 * `now` moved by `amount` units (negative: back). Minutes and hours are exact durations. Days,
 * weeks and months are calendar steps in `timeZone`: the same wall-clock time N days (7N days, N
 * months) away, so "the last 30 days" spans 30 calendar days across a daylight-saving change; a
 * month step that lands past the end of a shorter month stops at its last day (March 31 − 1 month
 * = February 28 or 29), as in PostgreSQL's interval arithmetic and Temporal.
 */
export function shiftInstant(now: number, amount: number, unit: DateUnit, timeZone: string): number {
  if (unit === 'minutes') return now + amount * 60_000
  if (unit === 'hours') return now + amount * 3_600_000
  const wall = now + zoneOffset(timeZone, now)
  const day = Math.floor(wall / MS_PER_DAY)
  const timeOfDay = wall - day * MS_PER_DAY
  let target: number
  if (unit === 'days' || unit === 'weeks') target = day + amount * (unit === 'weeks' ? 7 : 1)
  else {
    const { y, m, d } = civilFromDay(day)
    const months = y * 12 + (m - 1) + amount
    const ty = Math.floor(months / 12)
    const tm = months - ty * 12 + 1
    target = dayFromCivil(ty, tm, Math.min(d, daysInMonth(ty, tm)))
  }
  return wallToInstant(timeZone, target * MS_PER_DAY + timeOfDay)
}
