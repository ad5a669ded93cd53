import type { DateWindow } from '../core/date.js'
import type { NumericOp } from '../core/segment.js'
import type { Bitset } from './bitset.js'
import type { ValueTypes } from './value-types.js'

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
