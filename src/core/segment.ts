/**
 * Segment conditions: the parsed form of `where` in `POST /v1/user/segments/query`.
 * PLACEHOLDER TYPES — the segmentation work replaces this file with the parser, keeping these names.
 */
export type TextOp = 'eq' | 'neq' | 'contains' | 'starts_with'
export type SetOp = 'in' | 'not_in'
export type NumericOp = 'gt' | 'gte' | 'lt' | 'lte'
export type PresenceOp = 'exists' | 'not_exists'

export type Condition =
  | { readonly kind: 'all'; readonly of: readonly Condition[] }
  | { readonly kind: 'any'; readonly of: readonly Condition[] }
  | { readonly kind: 'not'; readonly of: Condition }
  | { readonly kind: 'text'; readonly field: string; readonly op: TextOp; readonly value: string }
  | { readonly kind: 'set'; readonly field: string; readonly op: SetOp; readonly values: readonly string[] }
  | { readonly kind: 'numeric'; readonly field: string; readonly op: NumericOp; readonly value: number }
  | { readonly kind: 'presence'; readonly field: string; readonly op: PresenceOp }
