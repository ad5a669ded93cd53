/** Numbers and times as people read them, in the browser's locale. */

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 })
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 })
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })

export const formatCount = (n: number): string => integer.format(n)

export function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`
}

export function toDate(value: string | number): Date {
  return new Date(value)
}

export function formatDateTime(value: string | number | null | undefined, never = 'Never'): string {
  if (value === null || value === undefined) return never
  const date = toDate(value)
  return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date)
}

/** The time of day for today's entries, with the date for older ones. */
export function formatTime(value: string | number, now = new Date()): string {
  const date = toDate(value)
  if (Number.isNaN(date.getTime())) return String(value)
  return date.toDateString() === now.toDateString() ? timeOnly.format(date) : dateTime.format(date)
}

/** "in 23 hours", "5 minutes ago". */
export function formatRelative(value: string | number, now = Date.now()): string {
  const seconds = (toDate(value).getTime() - now) / 1000
  const abs = Math.abs(seconds)
  if (abs < 60) return relative.format(Math.round(seconds), 'second')
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute')
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), 'hour')
  return relative.format(Math.round(seconds / 86400), 'day')
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${decimal.format(ms)} ms` : `${decimal.format(ms / 1000)} s`
}

export function formatPercent(part: number, whole: number): string {
  if (whole === 0) return '0 %'
  return `${decimal.format((part / whole) * 100)} %`
}
