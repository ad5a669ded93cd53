import { normalizeTimeZone } from '../core/date.js'
import { validationError } from '../core/errors.js'
import { showJsonValue } from '../core/json-value.js'

/** The canonical IANA name of `timeZone`, or a VALIDATION_FAILED error at path `time_zone`. Both stores share it. */
export function checkTimeZone(timeZone: unknown): string {
  const zone = typeof timeZone === 'string' ? normalizeTimeZone(timeZone) : undefined
  if (zone === undefined) {
    throw validationError([
      {
        code: typeof timeZone === 'string' ? 'invalid_value' : 'invalid_type',
        path: 'time_zone',
        message: `must be an IANA time zone name such as "UTC", "Asia/Tokyo" or "America/New_York", got ${showJsonValue(timeZone)}`,
      },
    ])
  }
  return zone
}
