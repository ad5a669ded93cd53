import type { Issue } from './result.js'

/** Every error code traitbase answers with, and its HTTP status: the one table (tested against the README). */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HEADERS_TOO_LARGE: 431,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const satisfies Record<string, number>

export type ErrorCode = keyof typeof ERROR_STATUS

/** The one exception class. `message` is safe to show a client unless the status is 5xx. */
export class TraitbaseError extends Error {
  readonly code: ErrorCode
  readonly issues: readonly Issue[] | undefined

  constructor(code: ErrorCode, message: string, options?: { issues?: readonly Issue[]; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TraitbaseError'
    this.code = code
    this.issues = options?.issues
  }

  get status(): number {
    return ERROR_STATUS[this.code]
  }
}

/** A 400 built from validation issues: `msg` names the first, `issues` lists all of them. */
export function validationError(issues: readonly Issue[]): TraitbaseError {
  const first = issues[0]
  const message = first === undefined ? 'Invalid request' : `${first.path}: ${first.message}`
  return new TraitbaseError('VALIDATION_FAILED', message, { issues })
}
