import type { DateWindow } from '../core/date.js'
import type { NumericOp } from '../core/segment.js'
import type { Bitset } from './bitset.js'
import type { ValueTypes } from './value-types.js'

/** A question one column answers by itself (the condition leaves, before negation). */
export type ColumnQuery =
  | { readonly op: 'present' }
  | { readonly op: 'equal'; readonly value: string }
  | { readonly op: 'oneOf'; readonly values: readonly string[] }
  | { readonly op: 'containing'; readonly needle: string }
  | { readonly op: 'startingWith'; readonly prefix: string }
  | { readonly op: 'numeric'; readonly numOp: NumericOp; readonly bound: number }
  | { readonly op: 'date'; readonly window: DateWindow }

/**
 * Sets in `out` the bits of the matching ordinals in `from` … `to` - 1, and none outside; `from`
 * is a multiple of 32 and of a packed column's part size (packed columns select whole parts).
 */
export type Selector = (out: Bitset, from: number, to: number) => void

/**
 * One attribute of one project in the segment index, whichever way it holds its values: a
 * dictionary of distinct values for low and medium cardinality ({@link DictionaryColumn}), or
 * every user's value packed in one buffer once the distinct values are too many for a dictionary
 * to pay ({@link PackedColumn}). Every `select…` answers a bitset over the first `bits` ordinals.
 */
export interface Column {
  readonly name: string
  /** Users holding a value. */
  readonly present: number
  grow(capacity: number): void
  /** Sets (or with undefined, clears) the value of user `ordinal`. */
  set(ordinal: number, value: string | undefined): void
  /**
   * Prepares `query` once (a dictionary marks its matching values here) for a run per slice of
   * ordinals: an evaluation can then yield between slices. The column must not change meanwhile.
   */
  selector(query: ColumnQuery): Selector
  selectPresent(bits: number): Bitset
  selectEqual(value: string, bits: number): Bitset
  selectOneOf(values: readonly string[], bits: number): Bitset
  selectContaining(needle: string, bits: number): Bitset
  selectStartingWith(prefix: string, bits: number): Bitset
  /** Users whose value is a number (the shared number rule) that compares true; other values never match. */
  selectNumeric(op: NumericOp, bound: number, bits: number): Bitset
  /** Users whose value is a date (the shared date rule) inside the window; other values never match. */
  selectDate(window: DateWindow, bits: number): Bitset
  /** Users per kind of value held now, with the extremes of numbers and dates (the typed catalog). */
  valueTypes(): ValueTypes
  /** Distinct values held now; null when the column does not count them (high cardinality). */
  distinctValues(): number | null
  /** Values held now with their user counts, most users first (ties by value), at most `limit`. */
  topValues(limit: number): { value: string; users: number }[]
  /** Entries held and how many of them no user holds any more (see ProjectIndex.entries). */
  entries(): { readonly total: number; readonly dead: number }
  /** Approximate bytes held, for the benchmark report. */
  memoryBytes(): number
}
