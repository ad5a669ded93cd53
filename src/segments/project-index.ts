import { USER_ID_FIELD } from '../core/limits.js'
import { compareNumber, evaluateLeaf, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import { AttributeColumn } from './attribute-column.js'
import {
  andInto,
  clearBit,
  complementInto,
  countBits,
  createBitset,
  hasBit,
  orInto,
  setBit,
  type Bitset,
} from './bitset.js'

/** One attribute in the catalog. */
export interface AttributeSummary {
  readonly name: string
  /** Users that have the attribute. */
  readonly users: number
  /** Distinct values held now. */
  readonly distinctValues: number
  /** Most common values with their user counts, when the attribute has at most `maxDistinct` values; else null. */
  readonly topValues: readonly { readonly value: string; readonly users: number }[] | null
}

/** A page of matching users in user_id order. */
export interface IndexPage {
  readonly userIds: string[]
  /** True when another matching user follows the last one returned. */
  readonly more: boolean
}

type Leaf = Exclude<Condition, { kind: 'all' | 'any' | 'not' }>

const INITIAL_CAPACITY = 1024

/**
 * The in-memory columnar segment index of one project: user ordinals, one {@link AttributeColumn}
 * per attribute, a bitset of live users, and the ordinals sorted by user_id (code point order),
 * merged lazily with ids added since the last page. Conditions evaluate to bitsets.
 */
export class ProjectIndex {
  private readonly ids: string[] = []
  private readonly ordinals = new Map<string, number>()
  private live: Bitset = createBitset(INITIAL_CAPACITY)
  private liveCount = 0
  private capacity = INITIAL_CAPACITY
  private readonly columns = new Map<string, AttributeColumn>()
  /** The same columns as an array: the per-user loop of {@link upsert} is the build's hot path. */
  private readonly columnList: AttributeColumn[] = []
  private sorted: Int32Array = new Int32Array(0)
  private unsorted: number[] = []

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
      const column = known[c] as AttributeColumn
      // Null-prototype records: only own keys hold strings; an inherited member is never a string.
      const v = attributes[column.name]
      if (typeof v === 'string') held++
      column.set(o, typeof v === 'string' ? v : undefined)
    }
    let keys = 0
    for (const _name in attributes) keys++
    if (keys === held) return
    for (const name of Object.keys(attributes)) {
      if (name === USER_ID_FIELD || this.columns.has(name)) continue
      const column = new AttributeColumn(name, this.capacity)
      this.columns.set(name, column)
      this.columnList.push(column)
      column.set(o, attributes[name])
    }
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
        const has = column.select(
          column.markValues(() => true),
          bits,
        )
        return leaf.op === 'exists' ? has : complementInto(has, this.live)
      }
      case 'text': {
        const needle = leaf.value
        switch (leaf.op) {
          case 'eq': {
            const code = column.codeOf(needle)
            return code === 0 ? createBitset(bits) : column.selectCode(code, bits)
          }
          case 'neq': {
            const code = column.codeOf(needle)
            return column.select(
              column.markValues((_v, c) => c !== code),
              bits,
            )
          }
          // Dictionary scans: each distinct value is tested once, however many users hold it.
          case 'contains':
            return column.select(column.markContaining(needle), bits)
          case 'starts_with':
            return column.select(
              column.markValues((v) => v.startsWith(needle)),
              bits,
            )
        }
        break
      }
      case 'set': {
        const mark = new Uint8Array(column.values.length)
        for (const v of leaf.values) mark[column.codeOf(v)] = 1
        if (leaf.op === 'not_in') {
          // Flip to "held values outside the list"; codes no user holds stay unmarked.
          const all = column.markValues(() => true)
          for (let c = 0; c < mark.length; c++) mark[c] = all[c] === 1 && mark[c] === 0 ? 1 : 0
        }
        mark[0] = 0
        return column.select(mark, bits)
      }
      case 'numeric': {
        const { op, value } = leaf
        // NaN (not a number) fails every comparison, as the reference requires.
        return column.select(
          column.markValues((_v, code) => compareNumber(column.numberOf(code), op, value)),
          bits,
        )
      }
    }
    return column.select(
      column.markValues((v) => evaluateLeaf(leaf, v)),
      bits,
    )
  }

  private evaluateUserId(leaf: Leaf): Bitset {
    const out = createBitset(this.ids.length)
    if (leaf.kind === 'text' && leaf.op === 'eq') {
      const o = this.ordinals.get(leaf.value)
      if (o !== undefined && hasBit(this.live, o)) setBit(out, o)
      return out
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
      out.push({
        name,
        users: column.present,
        distinctValues: column.liveValues,
        topValues: column.liveValues <= maxDistinct ? column.topValues(top) : null,
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
      const values = column.values.length - 1
      total += values
      dead += values - column.liveValues
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
