/** A value or the reasons there is none. Validation returns this instead of throwing. */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E }

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value }
}

export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error }
}

/**
 * One problem found in client input, shaped like a zod issue: a machine code, the path of the
 * offending element (`values[3][1]`, `where.all[2].op`) and a sentence a person can act on.
 */
export interface Issue {
  readonly code: IssueCode
  readonly path: string
  readonly message: string
}

export type IssueCode =
  | 'invalid_type'
  | 'required'
  | 'unknown_key'
  | 'too_small'
  | 'too_big'
  | 'duplicate'
  | 'invalid_value'
  | 'invalid_string'
