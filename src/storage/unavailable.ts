/**
 * Errors that mean the database cannot be reached or is busy right now, not that the request or our
 * code is wrong: the server answers them 503 with `Retry-After`, so clients retry instead of giving
 * up on a 500.
 */

/**
 * PostgreSQL SQLSTATEs: connection exceptions (class 08), shutdown or starting up, too many
 * connections, database gone, and a statement cancelled by `statement_timeout` (57014) or a lock
 * not granted in time (55P03): the database is too slow right now, the request may be retried.
 */
const PG_UNAVAILABLE = /^(08...|57P0[1-4]|57014|55P03|53300|53400|3D000)$/
/** Node network errors on the way to the database. */
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'])
/** SQLite result codes for a file that is locked by another process, full, or unreadable right now. */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|PROTOCOL)/
/** node-postgres reports a dropped or timed-out connection, or its own query timeout, with a message and no code. */
const PG_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/

export function isStoreUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (PG_UNAVAILABLE.test(code) || NETWORK.has(code) || SQLITE_UNAVAILABLE.test(code))) {
    return true
  }
  if (PG_MESSAGES.test(error.message)) return true
  // AggregateError (several addresses refused) and errors wrapping a cause.
  if (error instanceof AggregateError && error.errors.some(isStoreUnavailable)) return true
  return error.cause !== undefined && error.cause !== error && isStoreUnavailable(error.cause)
}
