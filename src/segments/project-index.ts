import { USER_ID_FIELD } from '../core/limits.js'
import { evaluateLeaf, windowOfLeaf, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import {
  andInto,
  andNotInto,
  clearBit,
  complementInto,
  countBits,
  createBitset,
  hasBit,
  orInto,
  setBit,
  type Bitset,
} from './bitset.js'
import type { Column } from './column.js'
import { DictionaryColumn } from './dictionary-column.js'
import { PackedColumn } from './packed-column.js'
import type { ValueTypes } from './value-types.js'

/** One attribute in the catalog. */
export interface AttributeSummary {
  readonly name: string
  /** Users that have the attribute. */
  readonly users: number
  /** Distinct values held now; null for high-cardinality attributes, whose values are not counted. */
  readonly distinctValues: number | null
  /** Most common values with their user counts, when the attribute has at most `maxDistinct` values; else null. */
  readonly topValues: readonly { readonly value: string; readonly users: number }[] | null
  /** Users per kind of value (string, number, boolean, date) with number and date extremes. */
  readonly types: ValueTypes
}

/** A page of matching users in user_id order. */
export interface IndexPage {
  readonly userIds: string[]
  /** True when another matching user follows the last one returned. */
  readonly more: boolean
}

type Leaf = Exclude<Condition, { kind: 'all' | 'any' | 'not' }>

const INITIAL_CAPACITY = 1024
/** Distinct values past which an attribute's dictionary is replaced by packed storage. */
export const DEFAULT_DICTIONARY_LIMIT = 65_536

/**
 * The in-memory columnar segment index of one project: user ordinals, one {@link DictionaryColumn}
 * per attribute, a bitset of live users, and the ordinals sorted by user_id (code point order),
 * merged lazily with ids added since the last page. Conditions evaluate to bitsets.
 */
export class ProjectIndex {
  private readonly ids: string[] = []
  private readonly ordinals = new Map<string, number>()
  private live: Bitset = createBitset(INITIAL_CAPACITY)
  private liveCount = 0
  private capacity = INITIAL_CAPACITY
  private readonly columns = new Map<string, Column>()
  /** The same columns as an array: the per-user loop of {@link upsert} is the build's hot path. */
  private readonly columnList: Column[] = []
  private sorted: Int32Array = new Int32Array(0)
  private unsorted: number[] = []

  /** @param dictionaryLimit distinct values past which a column is packed (tests lower it). */
  constructor(private readonly dictionaryLimit = DEFAULT_DICTIONARY_LIMIT) {}

  /** Users currently in the project. */
  get users(): number {
    return this.liveCount
  }

  /** Replaces the user's whole profile (the change feed carries current states). */
  upsert(userId: string, attributes: Readonly<Record<string, string>>): void {
    let o = this.ordinals.get(userId)
    if (o === undefined) {
      o = this.ids.length
      if (o >= this.capacity) this.grow()
      this.ids.push(userId)
      this.ordinals.set(userId, o)
      this.unsorted.push(o)
    }
    if (!hasBit(this.live, o)) {
      setBit(this.live, o)
      this.liveCount++
    }
    const known = this.columnList
    let held = 0
    for (let c = 0; c < known.length; c++) {
      const column = known[c] as Column
      // Only own keys hold strings; an inherited member (plain objects from JSON.parse) is never a string.
      const v = attributes[column.name]
      if (typeof v === 'string') held++
      column.set(o, typeof v === 'string' ? v : undefined)
      if (column instanceof DictionaryColumn && column.dictionarySize > this.dictionaryLimit) this.pack(c, column)
    }
    let keys = 0
    for (const _name in attributes) keys++
    if (keys === held) return
    for (const name of Object.keys(attributes)) {
      if (name === USER_ID_FIELD || this.columns.has(name)) continue
      const column = new DictionaryColumn(name, this.capacity)
      this.columns.set(name, column)
      this.columnList.push(column)
      column.set(o, attributes[name])
    }
  }

  /** Replaces a dictionary column that outgrew its limit by a packed one holding the same values. */
  private pack(at: number, column: DictionaryColumn): void {
    const packed = new PackedColumn(column.name, this.capacity)
    for (let o = 0; o < this.ids.length; o++) {
      const v = column.valueOf(o)
      if (v !== undefined) packed.set(o, v)
    }
    this.columns.set(column.name, packed)
    this.columnList[at] = packed
  }

  /** Forgets the user's attributes; its ordinal stays reserved for a later re-creation. */
  remove(userId: string): void {
    const o = this.ordinals.get(userId)
    if (o === undefined || !hasBit(this.live, o)) return
    clearBit(this.live, o)
    this.liveCount--
    for (const column of this.columns.values()) column.set(o, undefined)
  }

  private grow(): void {
    this.capacity *= 2
    const live = createBitset(this.capacity)
    live.set(this.live)
    this.live = live
    for (const column of this.columns.values()) column.grow(this.capacity)
  }

  /** The users matching `cond`, as a bitset over the current ordinals. */
  evaluate(cond: Condition): Bitset {
    switch (cond.kind) {
      case 'all': {
        const out = this.live.slice(0, this.words())
        for (const c of cond.of) andInto(out, this.evaluate(c))
        return out
      }
      case 'any': {
        const out = createBitset(this.ids.length)
        for (const c of cond.of) orInto(out, this.evaluate(c))
        return out
      }
      case 'not':
        return complementInto(this.evaluate(cond.of), this.live)
      default:
        return this.evaluateLeaf(cond)
    }
  }

  private words(): number {
    return (this.ids.length + 31) >>> 5
  }

  private evaluateLeaf(leaf: Leaf): Bitset {
    const bits = this.ids.length
    if (leaf.field === USER_ID_FIELD) return this.evaluateUserId(leaf)
    const column = this.columns.get(leaf.field)
    if (column === undefined) {
      return leaf.kind === 'presence' && leaf.op === 'not_exists'
        ? this.live.slice(0, this.words())
        : createBitset(bits)
    }
    switch (leaf.kind) {
      case 'presence': {
        const has = column.selectPresent(bits)
        return leaf.op === 'exists' ? has : complementInto(has, this.live)
      }
      case 'text':
        switch (leaf.op) {
          case 'eq':
            return column.selectEqual(leaf.value, bits)
          // Users with the attribute and another value: a user without it never matches neq.
          case 'neq':
            return andNotInto(column.selectPresent(bits), column.selectEqual(leaf.value, bits))
          case 'contains':
            return column.selectContaining(leaf.value, bits)
          case 'starts_with':
            return column.selectStartingWith(leaf.value, bits)
        }
      // An exhaustive switch: TypeScript knows control never falls through.
      case 'set': {
        const hit = column.selectOneOf(leaf.values, bits)
        return leaf.op === 'in' ? hit : andNotInto(column.selectPresent(bits), hit)
      }
      case 'numeric':
        return column.selectNumeric(leaf.op, leaf.value, bits)
      case 'date':
        return column.selectDate(windowOfLeaf(leaf), bits)
    }
  }

  /**
   * `user_id` is not a column: equality and sets look ids up in the ordinal map (one lookup per
   * value, not per user); other operators test each live id once.
   */
  private evaluateUserId(leaf: Leaf): Bitset {
    const out = createBitset(this.ids.length)
    const mark = (id: string): void => {
      const o = this.ordinals.get(id)
      if (o !== undefined && hasBit(this.live, o)) setBit(out, o)
    }
    if (leaf.kind === 'text' && (leaf.op === 'eq' || leaf.op === 'neq')) {
      mark(leaf.value)
      return leaf.op === 'eq' ? out : complementInto(out, this.live)
    }
    if (leaf.kind === 'set') {
      for (const id of leaf.values) mark(id)
      return leaf.op === 'in' ? out : complementInto(out, this.live)
    }
    for (let o = 0; o < this.ids.length; o++) {
      if (hasBit(this.live, o) && evaluateLeaf(leaf, this.ids[o])) setBit(out, o)
    }
    return out
  }

  /** Number of users in a bitset from {@link evaluate}. */
  count(set: Bitset): number {
    return countBits(set)
  }

  /** Up to `limit` users of `set` with user_id strictly after `afterUserId`, in code point order. */
  page(set: Bitset, afterUserId: string | undefined, limit: number): IndexPage {
    const sorted = this.sortedOrdinals()
    let i = 0
    if (afterUserId !== undefined) {
      let lo = 0
      let hi = sorted.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (compareCodePoints(this.ids[sorted[mid] as number] as string, afterUserId) <= 0) lo = mid + 1
        else hi = mid
      }
      i = lo
    }
    const userIds: string[] = []
    for (; i < sorted.length; i++) {
      const o = sorted[i] as number
      if (o < set.length * 32 && hasBit(set, o)) {
        if (userIds.length === limit) return { userIds, more: true }
        userIds.push(this.ids[o] as string)
      }
    }
    return { userIds, more: false }
  }

  private sortedOrdinals(): Int32Array {
    if (this.unsorted.length === 0) return this.sorted
    const ids = this.ids
    const byId = (a: number, b: number) => compareCodePoints(ids[a] as string, ids[b] as string)
    const fresh = Int32Array.from(this.unsorted).sort(byId)
    const old = this.sorted
    const merged = new Int32Array(old.length + fresh.length)
    let a = 0
    let b = 0
    let k = 0
    while (a < old.length && b < fresh.length) {
      merged[k++] = byId(old[a] as number, fresh[b] as number) <= 0 ? (old[a++] as number) : (fresh[b++] as number)
    }
    while (a < old.length) merged[k++] = old[a++] as number
    while (b < fresh.length) merged[k++] = fresh[b++] as number
    this.sorted = merged
    this.unsorted = []
    return merged
  }

  /**
   * Every attribute some user has, by name (code point order), with its user count and, for
   * attributes with at most `maxDistinct` distinct values (default 1000), the `top` (default 20)
   * most common values.
   */
  catalog(maxDistinct = 1000, top = 20): AttributeSummary[] {
    const out: AttributeSummary[] = []
    for (const [name, column] of this.columns) {
      if (column.present === 0) continue
      const distinct = column.distinctValues()
      out.push({
        name,
        users: column.present,
        distinctValues: distinct,
        topValues: distinct !== null && distinct <= maxDistinct ? column.topValues(top) : null,
        types: column.valueTypes(),
      })
    }
    return out.sort((a, b) => compareCodePoints(a.name, b.name))
  }

  /**
   * Index entries held (user ordinals plus dictionary values) and how many of them are dead. Neither
   * ordinals of deleted users nor values no user holds any more are reused, so churn (deletions,
   * values that change on every upload such as timestamps) only grows the index until it is rebuilt.
   */
  entries(): { readonly total: number; readonly dead: number } {
    let total = this.ids.length
    let dead = this.ids.length - this.liveCount
    for (const column of this.columnList) {
      const held = column.entries()
      total += held.total
      dead += held.dead
    }
    return { total, dead }
  }

  /** Approximate bytes held by the index, for the benchmark report. */
  memoryBytes(): number {
    let bytes = this.live.byteLength + this.sorted.byteLength + this.ids.length * (60 + 8)
    for (const id of this.ids) bytes += 2 * id.length
    for (const column of this.columns.values()) bytes += column.memoryBytes()
    return bytes
  }
}
