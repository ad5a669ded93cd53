/**
 * The one error the SDK throws or reports. `message` reads like `POST /v1/user/profiles: 400 <msg>`,
 * so a log line says what was attempted and what the server answered.
 */
export class TraitbaseApiError extends Error {
  /** HTTP status, or `null` when no response arrived (network error, timeout). */
  readonly status: number | null
  /** The server's `msg`, or a description of the transport failure. */
  readonly msg: string
  /** True when sending the same request again may succeed (408, 425, 429, 5xx, network errors, timeouts). */
  readonly retryable: boolean
  readonly method: string
  readonly path: string

  constructor(init: {
    method: string
    path: string
    status: number | null
    msg: string
    retryable: boolean
    cause?: unknown
  }) {
    const what = init.status === null ? init.msg : `${init.status} ${init.msg}`
    super(`${init.method} ${init.path}: ${what}`, init.cause === undefined ? undefined : { cause: init.cause })
    this.name = 'TraitbaseApiError'
    this.status = init.status
    this.msg = init.msg
    this.retryable = init.retryable
    this.method = init.method
    this.path = init.path
  }
}
