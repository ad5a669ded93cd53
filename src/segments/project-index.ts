import { USER_ID_FIELD } from '../core/limits.js'
import { evaluateLeaf, windowOfLeaf, type Condition } from '../core/segment.js'
import { compareCodePoints } from '../core/text.js'
import { clearBit, countBits, createBitset, hasBit, setBit, type Bitset } from './bitset.js'
import type { Column, ColumnQuery } from './column.js'
import { DictionaryColumn, type DictionaryColumnSnapshot } from './dictionary-column.js'
import { encodeId, IdTable, type IdTableSnapshot } from './id-table.js'
import { PackedColumn, PART_ORDINALS, type PackedColumnSnapshot } from './packed-column.js'
import type { TransferList } from './transfer.js'
import type { ValueTypes } from './value-types.js'

/** What {@link ProjectIndex.snapshot} hands to another thread: typed arrays and a few numbers and names. */
export interface ProjectIndexSnapshot {
  readonly dictionaryLimit: number
  readonly partOrdinals: number
  readonly ids: IdTableSnapshot
  readonly live: Uint32Array<ArrayBuffer>
  readonly liveCount: number
  readonly capacity: number
  /** In the index's column order. */
  readonly columns: readonly (DictionaryColumnSnapshot | PackedColumnSnapshot)[]
  readonly order: Int32Array<ArrayBuffer> | null
  readonly ordered: number
  readonly tail: Int32Array<ArrayBuffer>
}

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
/** Ids sorted per chunk by {@link ProjectIndex.sortInSlices}. */
const SORT_SLICE = 8192
/** The sorted tail is merged into the main order once it holds more than 1/this of it. */
const TAIL_SHARE = 8
/** Ordinals {@link ProjectIndex.sortInSlices} merges between pauses (one id comparison each). */
const MERGE_SLICE = 65_536

/**
 * The in-memory columnar segment index of one project: user ordinals ({@link IdTable}), one
 * {@link Column} per attribute, a bitset of live users, and the ordinals in user_id order (code
 * point order). Conditions evaluate to bitsets.
 *
 * Order without a sort: a full load reads the feed in user_id order, so ordinals given in that
 * order are already sorted and need no array at all (`order` null). Ids added out of order later
 * go to a sorted tail that pages merge on the fly; the tail joins the main order only once it
 * holds more than 1/{@link TAIL_SHARE} of it, so that O(n) merge is rare.
 * Nothing here is a JS `Map`, `Set` or array sized by the user count.
 */
export class ProjectIndex {
  private ids: IdTable
  private live: Bitset = createBitset(INITIAL_CAPACITY)
  private liveCount = 0
  private capacity = INITIAL_CAPACITY
  private readonly columns = new Map<string, Column>()
  /** The same columns as an array: the per-user loop of {@link upsert} is the build's hot path. */
  private readonly columnList: Column[] = []
  /** Main order: the first `ordered` ordinals in user_id order; null while that is ordinal order. */
  private order: Int32Array | null = null
  private ordered = 0
  /** Ordinals `ordered` … `ordered + tail.length - 1` in user_id order; later ones are not sorted yet. */
  private tail: Int32Array = new Int32Array(0)
  /** The {@link sortInSlices} under way, shared by the queries that arrive meanwhile. */
  private sorting: Promise<void> | undefined

  /**
   * @param dictionaryLimit distinct values past which a column is packed (tests lower it).
   * @param idChunkBytes bytes per user-id storage chunk (tests lower it).
   * @param partOrdinals users per part of a packed column, and per slice of {@link evaluateInSlices} (tests lower it).
   */
  constructor(
    private readonly dictionaryLimit = DEFAULT_DICTIONARY_LIMIT,
    idChunkBytes?: number,
    private readonly partOrdinals = PART_ORDINALS,
  ) {
    this.ids = new IdTable(idChunkBytes)
  }

  /**
   * The index as typed arrays whose memory `transfer` lists, for `postMessage` to another thread
   * (the segment index is built on a worker thread). This index must not be used afterwards.
   */
  snapshot(transfer: TransferList): ProjectIndexSnapshot {
    return {
      dictionaryLimit: this.dictionaryLimit,
      partOrdinals: this.partOrdinals,
      ids: this.ids.snapshot(transfer),
      live: transfer.add(this.live),
      liveCount: this.liveCount,
      capacity: this.capacity,
      columns: this.columnList.map((column) =>
        column instanceof DictionaryColumn ? column.snapshot(transfer) : (column as PackedColumn).snapshot(transfer),
      ),
      order: this.order === null ? null : transfer.add(this.order),
      ordered: this.ordered,
      tail: transfer.add(this.tail),
    }
  }

  /**
   * The index a {@link snapshot} describes, over the same memory. Nothing here runs per user; the
   * only loops are per column and per dictionary value (at most the dictionary limit per column),
   * with `pause` called between slices of them so the caller can yield the event loop.
   */
  static async restore(s: ProjectIndexSnapshot, pause: () => Promise<void>): Promise<ProjectIndex> {
    const index = new ProjectIndex(s.dictionaryLimit, undefined, s.partOrdinals)
    index.ids = IdTable.restore(s.ids)
    index.live = s.live
    index.liveCount = s.liveCount
    index.capacity = s.capacity
    for (const c of s.columns) {
      const column = c.kind === 'dictionary' ? await DictionaryColumn.restore(c, pause) : PackedColumn.restore(c)
      index.columns.set(column.name, column)
      index.columnList.push(column)
    }
    index.order = s.order
    index.ordered = s.ordered
    index.tail = s.tail
    return index
  }

  /** Users currently in the project. */
  get users(): number {
    return this.liveCount
  }

  /** Replaces the user's whole profile (the change feed carries current states). */
  upsert(userId: string, attributes: Readonly<Record<string, string>>): void {
    let o = this.ids.lookup(userId)
    if (o < 0) {
      o = this.ids.size
      if (o >= this.capacity) this.grow()
      this.ids.add(userId)
      // Still in order (a full load reads the feed by user_id): the main order grows for free.
      if (this.order === null && this.ordered === o && (o === 0 || this.ids.compare(o - 1, o) < 0)) this.ordered++
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
    const packed = new PackedColumn(column.name, this.capacity, this.partOrdinals)
    for (let o = 0; o < this.ids.size; o++) {
      const v = column.valueOf(o)
      if (v !== undefined) packed.set(o, v)
    }
    this.columns.set(column.name, packed)
    this.columnList[at] = packed
  }

  /** Forgets the user's attributes; its ordinal stays reserved for a later re-creation. */
  remove(userId: string): void {
    const o = this.ids.lookup(userId)
    if (o < 0 || !hasBit(this.live, o)) return
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
    this.ids.reserve(this.capacity)
  }

  /**
   * Makes room for `users` more users ahead of {@link upsert}, one array at a time with `pause`
   * between them. Doubling in `upsert` copies every column in one go (at 1M users × 11 attributes,
   * ~160 ms on the event loop); here each step copies one column. Values are the same before and
   * after a step, so queries may run in between; only upserts must wait for this to finish.
   */
  async reserve(users: number, pause: () => Promise<void>): Promise<void> {
    let capacity = this.capacity
    while (this.ids.size + users > capacity) capacity *= 2
    if (capacity === this.capacity) return
    const live = createBitset(capacity)
    live.set(this.live)
    this.live = live
    await pause()
    this.ids.reserve(capacity)
    for (const column of [...this.columnList]) {
      await pause()
      column.grow(capacity)
    }
    this.capacity = capacity
  }

  /** The users matching `cond`, as a bitset over the current ordinals. */
  evaluate(cond: Condition): Bitset {
    const plan = this.plan(cond)
    plan.run(0, this.ids.size)
    return plan.out
  }

  /**
   * Like {@link evaluate}, one slice of `partOrdinals` users (a packed part) at a time. Right before
   * each slice `turn` says whether it may run now (undefined) or what to wait for first (and is
   * asked again after); nothing else runs between its answer and the slice, so a budget it keeps
   * is exact. The index must not change until the promise resolves (the segment index holds back
   * the feed meanwhile).
   */
  async evaluateInSlices(cond: Condition, turn: () => Promise<void> | undefined): Promise<Bitset> {
    // Planning may do work of its own (a substring search of a packed column runs here): it goes
    // with the first slice.
    for (let wait = turn(); wait !== undefined; wait = turn()) await wait
    const plan = this.plan(cond)
    const bits = this.ids.size
    const slice = this.partOrdinals
    for (let from = 0; from < bits; from += slice) {
      if (from > 0) for (let wait = turn(); wait !== undefined; wait = turn()) await wait
      plan.run(from, Math.min(bits, from + slice))
    }
    return plan.out
  }

  /**
   * Sorts the ids added out of order since the last page (a catch-up after a long build adds many)
   * in chunks, and merges a tail grown past 1/{@link TAIL_SHARE} of the main order into it (an
   * O(users) merge: ~0.2 s at 1M users in one go) in slices, calling `pause` between them, so
   * {@link page} has little left to do. One run at a time: concurrent queries share it. The result
   * is dropped if the order changed meanwhile.
   */
  sortInSlices(pause: () => Promise<void>): Promise<void> {
    if (this.sorting === undefined) {
      this.sorting = this.sortSlices(pause).finally(() => {
        this.sorting = undefined
      })
    }
    return this.sorting
  }

  private async sortSlices(pause: () => Promise<void>): Promise<void> {
    const ids = this.ids
    const ordered = this.ordered
    const order = this.order
    const known = ordered + this.tail.length
    const size = ids.size
    const byId = (a: number, b: number) => ids.compare(a, b)
    let tail = this.tail
    if (size - known > SORT_SLICE) {
      for (let start = known; start < size; start += SORT_SLICE) {
        tail = mergeSorted(tail, this.sortedRange(start, Math.min(size, start + SORT_SLICE)), byId)
        await pause()
      }
    } else if (size > known && (tail.length + size - known) * TAIL_SHARE >= ordered) {
      tail = mergeSorted(tail, this.sortedRange(known, size), byId)
    }
    const unchanged = () =>
      this.ordered === ordered && this.order === order && this.ordered + this.tail.length === known && ids.size === size
    if (tail.length * TAIL_SHARE < ordered || tail.length + ordered !== size) {
      if (tail !== this.tail && unchanged()) this.tail = tail
      return
    }
    const main = order ?? identity(ordered)
    const merged = new Int32Array(size)
    let i = 0
    let j = 0
    let k = 0
    while (k < size) {
      const end = Math.min(size, k + MERGE_SLICE)
      while (k < end) {
        if (j >= tail.length || (i < main.length && byId(main[i] as number, tail[j] as number) <= 0))
          merged[k++] = main[i++] as number
        else merged[k++] = tail[j++] as number
      }
      if (k < size) await pause()
    }
    if (!unchanged()) return
    this.order = merged
    this.ordered = size
    this.tail = new Int32Array(0)
  }

  /** Ordinals `from` … `to` - 1 in user_id order. */
  private sortedRange(from: number, to: number): Int32Array {
    // Sorted by their decoded ids (one decode per id, JS comparisons) rather than by bytes (a native
    // call per comparison, several times slower for many ids).
    const count = to - from
    const keys: string[] = []
    for (let k = 0; k < count; k++) keys.push(this.ids.idOf(from + k))
    const fresh = new Int32Array(count)
    for (let k = 0; k < count; k++) fresh[k] = k
    fresh.sort((a, b) => compareCodePoints(keys[a] as string, keys[b] as string))
    for (let k = 0; k < count; k++) fresh[k] = from + (fresh[k] as number)
    return fresh
  }

  private words(): number {
    return (this.ids.size + 31) >>> 5
  }

  /**
   * One bitset per node of the condition, and how to fill its words for a slice of ordinals: the
   * dictionary work of each leaf is done here, once; a slice touches only its own words.
   */
  private plan(cond: Condition): Plan {
    const out = createBitset(this.ids.size)
    const live = this.live
    switch (cond.kind) {
      case 'all': {
        const parts = cond.of.map((c) => this.plan(c))
        return {
          out,
          run: (from, to) => {
            const w0 = from >>> 5
            const w1 = (to + 31) >>> 5
            out.set(live.subarray(w0, w1), w0)
            for (const part of parts) {
              part.run(from, to)
              const o = part.out
              for (let w = w0; w < w1; w++) out[w] = (out[w] as number) & (o[w] as number)
            }
          },
        }
      }
      case 'any': {
        const parts = cond.of.map((c) => this.plan(c))
        return {
          out,
          run: (from, to) => {
            const w1 = (to + 31) >>> 5
            for (const part of parts) {
              part.run(from, to)
              const o = part.out
              for (let w = from >>> 5; w < w1; w++) out[w] = (out[w] as number) | (o[w] as number)
            }
          },
        }
      }
      case 'not': {
        const inner = this.plan(cond.of)
        return {
          out,
          run: (from, to) => {
            inner.run(from, to)
            complementWords(out, inner.out, live, from, to)
          },
        }
      }
      default:
        return { out, run: this.planLeaf(cond, out) }
    }
  }

  private planLeaf(leaf: Leaf, out: Bitset): Run {
    if (leaf.field === USER_ID_FIELD) return this.planUserId(leaf, out)
    const live = this.live
    const column = this.columns.get(leaf.field)
    if (column === undefined) {
      if (leaf.kind === 'presence' && leaf.op === 'not_exists') {
        return (from, to) => out.set(live.subarray(from >>> 5, (to + 31) >>> 5), from >>> 5)
      }
      return () => undefined
    }
    const direct = (query: ColumnQuery): Run => {
      const select = column.selector(query)
      return (from, to) => select(out, from, to)
    }
    /** Users holding the attribute with a value that does not match `query`. */
    const presentBut = (query: ColumnQuery): Run => {
      const present = column.selector({ op: 'present' })
      const hit = column.selector(query)
      const scratch = createBitset(this.ids.size)
      return (from, to) => {
        present(out, from, to)
        hit(scratch, from, to)
        const w1 = (to + 31) >>> 5
        for (let w = from >>> 5; w < w1; w++) out[w] = (out[w] as number) & ~(scratch[w] as number)
      }
    }
    switch (leaf.kind) {
      case 'presence': {
        if (leaf.op === 'exists') return direct({ op: 'present' })
        const present = column.selector({ op: 'present' })
        const scratch = createBitset(this.ids.size)
        return (from, to) => {
          present(scratch, from, to)
          complementWords(out, scratch, live, from, to)
        }
      }
      case 'text':
        switch (leaf.op) {
          case 'eq':
            return direct({ op: 'equal', value: leaf.value })
          // Users with the attribute and another value: a user without it never matches neq.
          case 'neq':
            return presentBut({ op: 'equal', value: leaf.value })
          case 'contains':
            return direct({ op: 'containing', needle: leaf.value })
          case 'starts_with':
            return direct({ op: 'startingWith', prefix: leaf.value })
        }
      // An exhaustive switch: TypeScript knows control never falls through.
      case 'set':
        return leaf.op === 'in'
          ? direct({ op: 'oneOf', values: leaf.values })
          : presentBut({ op: 'oneOf', values: leaf.values })
      case 'numeric':
        return direct({ op: 'numeric', numOp: leaf.op, bound: leaf.value })
      case 'date':
        return direct({ op: 'date', window: windowOfLeaf(leaf) })
    }
  }

  /**
   * `user_id` is not a column: equality and sets look ids up in the id table (one lookup per
   * value, not per user); other operators test each live id once.
   */
  private planUserId(leaf: Leaf, out: Bitset): Run {
    const live = this.live
    const ids = this.ids
    if ((leaf.kind === 'text' && (leaf.op === 'eq' || leaf.op === 'neq')) || leaf.kind === 'set') {
      const wanted = leaf.kind === 'set' ? leaf.values : [leaf.value]
      const ordinals: number[] = []
      for (const id of wanted) {
        const o = ids.lookup(id)
        if (o >= 0 && hasBit(live, o)) ordinals.push(o)
      }
      const negate = leaf.op === 'neq' || leaf.op === 'not_in'
      const hits = negate ? createBitset(ids.size) : out
      return (from, to) => {
        for (const o of ordinals) if (o >= from && o < to) setBit(hits, o)
        if (negate) complementWords(out, hits, live, from, to)
      }
    }
    return (from, to) => {
      for (let o = from; o < to; o++) {
        if (hasBit(live, o) && evaluateLeaf(leaf, ids.idOf(o))) setBit(out, o)
      }
    }
  }

  /** Number of users in a bitset from {@link evaluate}. */
  count(set: Bitset): number {
    return countBits(set)
  }

  /** Up to `limit` users of `set` with user_id strictly after `afterUserId`, in code point order. */
  page(set: Bitset, afterUserId: string | undefined, limit: number): IndexPage {
    this.sortTail()
    const ids = this.ids
    const order = this.order
    const tail = this.tail
    const tailLength = tail.length
    const mainAt = (i: number): number => (order === null ? i : (order[i] as number))
    let i = 0
    let j = 0
    if (afterUserId !== undefined) {
      const after = encodeId(afterUserId)
      i = firstAfter(this.ordered, (k) => ids.compareTo(mainAt(k), after))
      j = firstAfter(tailLength, (k) => ids.compareTo(tail[k] as number, after))
    }
    const bits = set.length * 32
    // The first limit+1 matches of the main order and of the tail: their merge starts with the
    // first limit+1 matches overall. Non-matching users cost a bit test, not an id comparison.
    const fromMain: number[] = []
    if (order === null) {
      // Ordinal order: whole words of non-matching users are skipped.
      const end = Math.min(this.ordered, bits)
      while (i < end && fromMain.length <= limit) {
        if (set[i >>> 5] === 0) i = (i | 31) + 1
        else if (hasBit(set, i++)) fromMain.push(i - 1)
      }
    } else {
      while (i < this.ordered && fromMain.length <= limit) {
        const o = order[i++] as number
        if (o < bits && hasBit(set, o)) fromMain.push(o)
      }
    }
    const fromTail: number[] = []
    while (j < tailLength && fromTail.length <= limit) {
      const o = tail[j++] as number
      if (o < bits && hasBit(set, o)) fromTail.push(o)
    }
    const userIds: string[] = []
    let a = 0
    let b = 0
    while (a < fromMain.length || b < fromTail.length) {
      const o =
        b >= fromTail.length || (a < fromMain.length && ids.compare(fromMain[a] as number, fromTail[b] as number) < 0)
          ? (fromMain[a++] as number)
          : (fromTail[b++] as number)
      if (userIds.length === limit) return { userIds, more: true }
      userIds.push(ids.idOf(o))
    }
    return { userIds, more: false }
  }

  /**
   * Sorts the ids added out of order since the last page into the tail (a sort of the new ones and
   * a merge), and merges the tail into the main order once it is big.
   */
  private sortTail(): void {
    const ids = this.ids
    const known = this.ordered + this.tail.length
    if (known === ids.size) return
    const byId = (a: number, b: number) => ids.compare(a, b)
    const fresh = this.sortedRange(known, ids.size)
    this.tail = mergeSorted(this.tail, fresh, byId)
    if (this.tail.length * TAIL_SHARE < this.ordered) return
    this.order = mergeSorted(this.order ?? identity(this.ordered), this.tail, byId)
    this.ordered = ids.size
    this.tail = new Int32Array(0)
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
      out.push(summaryOf(name, column, column.valueTypes(), maxDistinct, top))
    }
    return out.sort((a, b) => compareCodePoints(a.name, b.name))
  }

  /**
   * {@link catalog} asking `turn` (see {@link evaluateInSlices}) before each column and each part of
   * a packed column, whose scan of every value is the only pass here that grows with the user count.
   * The index must not change until the promise resolves.
   */
  async catalogInSlices(
    turn: () => Promise<void> | undefined,
    maxDistinct = 1000,
    top = 20,
  ): Promise<AttributeSummary[]> {
    const out: AttributeSummary[] = []
    for (const [name, column] of [...this.columns]) {
      if (column.present === 0) continue
      for (let wait = turn(); wait !== undefined; wait = turn()) await wait
      const types = column instanceof PackedColumn ? await column.valueTypesInSlices(turn) : column.valueTypes()
      out.push(summaryOf(name, column, types, maxDistinct, top))
    }
    return out.sort((a, b) => compareCodePoints(a.name, b.name))
  }

  /**
   * Index entries held (user ordinals plus dictionary values) and how many of them are dead. Neither
   * ordinals of deleted users nor values no user holds any more are reused, so churn (deletions,
   * values that change on every upload such as timestamps) only grows the index until it is rebuilt.
   */
  entries(): { readonly total: number; readonly dead: number } {
    let total = this.ids.size
    let dead = this.ids.size - this.liveCount
    for (const column of this.columnList) {
      const held = column.entries()
      total += held.total
      dead += held.dead
    }
    return { total, dead }
  }

  /**
   * Bytes held by the index (typed arrays and buffers exactly, dictionary strings estimated): what
   * the memory budget counts. O(columns + dictionary values), never O(users).
   */
  memoryBytes(): number {
    let bytes = this.live.byteLength + (this.order?.byteLength ?? 0) + this.tail.byteLength + this.ids.memoryBytes()
    for (const column of this.columnList) bytes += column.memoryBytes()
    return bytes
  }
}

/** A condition node's bitset and how to fill it slice by slice. */
interface Plan {
  readonly out: Bitset
  readonly run: Run
}

/** Fills a node's bitset for the ordinals `from` (a multiple of {@link PART_ORDINALS}) … `to` - 1. */
type Run = (from: number, to: number) => void

/** `out = universe & ~a` over the words of ordinals `from` … `to` - 1. */
function complementWords(out: Bitset, a: Bitset, universe: Bitset, from: number, to: number): void {
  const w1 = (to + 31) >>> 5
  for (let w = from >>> 5; w < w1; w++) out[w] = (universe[w] as number) & ~(a[w] as number)
}

/** First position in 0 … n-1 whose entry sorts after the cursor (`cmp(k)` > 0), by binary search. */
function firstAfter(n: number, cmp: (k: number) => number): number {
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (cmp(mid) <= 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function summaryOf(
  name: string,
  column: Column,
  types: ValueTypes,
  maxDistinct: number,
  top: number,
): AttributeSummary {
  const distinct = column.distinctValues()
  return {
    name,
    users: column.present,
    distinctValues: distinct,
    topValues: distinct !== null && distinct <= maxDistinct ? column.topValues(top) : null,
    types,
  }
}

/** Ordinals 0 … n-1. */
function identity(n: number): Int32Array {
  const out = new Int32Array(n)
  for (let k = 0; k < n; k++) out[k] = k
  return out
}

/** The merge of two ordinal arrays each sorted by `byId`. */
function mergeSorted(a: Int32Array, b: Int32Array, byId: (x: number, y: number) => number): Int32Array {
  if (a.length === 0) return b
  if (b.length === 0) return a
  const out = new Int32Array(a.length + b.length)
  if (b.length * 32 < a.length) {
    // A few new ids into a long tail (every page after a trickle of new users): each finds its
    // place by binary search and the runs of `a` between them are copied whole, instead of one id
    // comparison per element of `a` (a profile showed those at a quarter of the loop's time).
    let from = 0
    let k = 0
    for (let j = 0; j < b.length; j++) {
      const x = b[j] as number
      let lo = from
      let hi = a.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (byId(a[mid] as number, x) <= 0) lo = mid + 1
        else hi = mid
      }
      out.set(a.subarray(from, lo), k)
      k += lo - from
      from = lo
      out[k++] = x
    }
    out.set(a.subarray(from), k)
    return out
  }
  let i = 0
  let j = 0
  let k = 0
  while (i < a.length && j < b.length) {
    out[k++] = byId(a[i] as number, b[j] as number) <= 0 ? (a[i++] as number) : (b[j++] as number)
  }
  while (i < a.length) out[k++] = a[i++] as number
  while (j < b.length) out[k++] = b[j++] as number
  return out
}
