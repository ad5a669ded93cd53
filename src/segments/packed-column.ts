import { parseDateValue, type DateWindow } from '../core/date.js'
import { compareNumber, parseNumericText, type NumericOp } from '../core/segment.js'
import { createBitset, setBit, type Bitset } from './bitset.js'
import type { Column, ColumnQuery, Selector } from './column.js'
import { asBuffer, type TransferList } from './transfer.js'
import { KIND_BOOLEAN, KIND_DAY, KIND_INSTANT, KIND_NUMBER, KIND_STRING, ValueTypes } from './value-types.js'

/** `in` lists up to this long are answered by one buffer search per value; longer ones by a hash lookup per user. */
const SEARCHES_PER_SET = 16
/** The buffer is compacted once it is at least this big and more than half of it is overwritten values. */
const COMPACT_MIN_BYTES = 1 << 20
/**
 * User ordinals per part: each part has its own buffer, so offsets stay far below 2^31 (at most
 * 2^20 × 513 bytes) whatever the user count, and a compaction copies one part, never the column.
 */
export const PART_ORDINALS = 1 << 20

/**
 * A high-cardinality attribute (emails, timestamps, external ids): every user's value packed as
 * UTF-8 in one buffer, each value between NUL bytes (`\0v1\0v2\0…`; uploads refuse NUL, so it
 * cannot occur inside a value). About (UTF-8 length + 13) bytes per user (1 for the value's kind,
 * for the typed catalog), 8 more once the column holds a number and 8 more once it holds a date,
 * against ~100 bytes per distinct value in a dictionary.
 *
 * Searches run over the whole buffer with `Buffer.indexOf`: `eq` looks for `\0v\0`, `starts_with`
 * for `\0prefix`, `contains` for the bytes of the needle (UTF-8 is self-synchronising, so a byte
 * match is a code point match). A hit maps to its entry by binary search over entry starts, and
 * counts only if the entry is still its user's current value. A changed value is appended, so
 * the old bytes stay until the buffer is compacted.
 */
class PackedPart {
  present = 0
  private data: Buffer = Buffer.alloc(1 << 16)
  /** Bytes of `data` in use; byte 0 is the leading NUL. */
  private used = 1
  /** Bytes of current values, each with its NUL. */
  private liveBytes = 0
  /** Entry → offset of its first byte, ascending (entries are appended). */
  private starts: Int32Array<ArrayBuffer> = new Int32Array(1024)
  /** Entry → user ordinal. */
  private owners: Int32Array<ArrayBuffer> = new Int32Array(1024)
  private count = 0
  /** Ordinal → its current entry + 1; 0 when the user lacks the attribute. */
  private current: Int32Array
  /** Ordinal → its value as a number (NaN when not a number or absent); made at the first number. */
  private numbers: Float64Array | undefined
  /** Ordinal → kind of its value (value-types.ts; 0 = absent): the typed catalog counts these. */
  private kinds: Uint8Array
  /** Ordinal → epoch ms (KIND_INSTANT) or day number (KIND_DAY) of its date; made at the first date. */
  private dates: Float64Array | undefined

  /** @param base the column ordinal of this part's ordinal 0. */
  constructor(
    readonly base: number,
    capacity: number,
  ) {
    this.current = new Int32Array(capacity)
    this.kinds = new Uint8Array(capacity)
  }

  get capacity(): number {
    return this.current.length
  }

  snapshot(transfer: TransferList): PackedPartSnapshot {
    return {
      base: this.base,
      present: this.present,
      data: transfer.add(this.data),
      used: this.used,
      liveBytes: this.liveBytes,
      starts: transfer.add(this.starts),
      owners: transfer.add(this.owners),
      count: this.count,
      current: transfer.add(this.current),
      numbers: this.numbers === undefined ? undefined : transfer.add(this.numbers),
      kinds: transfer.add(this.kinds),
      dates: this.dates === undefined ? undefined : transfer.add(this.dates),
    }
  }

  static restore(s: PackedPartSnapshot): PackedPart {
    const part = new PackedPart(s.base, 0)
    part.present = s.present
    part.data = asBuffer(s.data)
    part.used = s.used
    part.liveBytes = s.liveBytes
    part.starts = s.starts as Int32Array<ArrayBuffer>
    part.owners = s.owners as Int32Array<ArrayBuffer>
    part.count = s.count
    part.current = s.current
    part.numbers = s.numbers
    part.kinds = s.kinds
    part.dates = s.dates
    return part
  }

  grow(capacity: number): void {
    if (capacity <= this.current.length) return
    const current = new Int32Array(capacity)
    current.set(this.current)
    this.current = current
    const kinds = new Uint8Array(capacity)
    kinds.set(this.kinds)
    this.kinds = kinds
    if (this.dates !== undefined) {
      const dates = new Float64Array(capacity)
      dates.set(this.dates)
      this.dates = dates
    }
    if (this.numbers !== undefined) {
      const numbers = new Float64Array(capacity).fill(Number.NaN)
      numbers.set(this.numbers)
      this.numbers = numbers
    }
  }

  set(ordinal: number, value: string | undefined): void {
    const old = (this.current[ordinal] as number) - 1
    if (value === undefined) {
      if (old >= 0) this.drop(ordinal, old)
      return
    }
    // Write the value after the last entry first: unchanged values (most re-uploads) stop here.
    this.reserve(value.length * 3 + 1)
    const length = this.data.write(value, this.used, 'utf8')
    if (old >= 0) {
      const start = this.starts[old] as number
      if (
        this.end(old) - start === length &&
        this.data.compare(this.data, this.used, this.used + length, start, start + length) === 0
      )
        return
      this.drop(ordinal, old)
    }
    this.data[this.used + length] = 0
    if (this.count === this.starts.length) {
      this.starts = grown(this.starts)
      this.owners = grown(this.owners)
    }
    this.starts[this.count] = this.used
    this.owners[this.count] = ordinal
    this.count++
    this.current[ordinal] = this.count
    this.used += length + 1
    this.liveBytes += length + 1
    this.present++
    const n = parseNumericText(value)
    if (n !== undefined) {
      this.numbers ??= new Float64Array(this.current.length).fill(Number.NaN)
      this.numbers[ordinal] = n
      this.kinds[ordinal] = KIND_NUMBER
    } else this.kinds[ordinal] = this.dateKind(ordinal, value)
    if (this.used >= COMPACT_MIN_BYTES && this.used > 2 * this.liveBytes) this.compact()
  }

  /** Kind of a value that is not a number; a date's number goes to `dates`. */
  private dateKind(ordinal: number, value: string): number {
    if (value === 'true' || value === 'false') return KIND_BOOLEAN
    const d = parseDateValue(value)
    if (d === undefined) return KIND_STRING
    this.dates ??= new Float64Array(this.current.length)
    this.dates[ordinal] = d.kind === 'instant' ? d.ms : d.day
    return d.kind === 'instant' ? KIND_INSTANT : KIND_DAY
  }

  private drop(ordinal: number, entry: number): void {
    this.kinds[ordinal] = 0
    this.liveBytes -= this.end(entry) - (this.starts[entry] as number) + 1
    this.current[ordinal] = 0
    this.present--
    if (this.numbers !== undefined) this.numbers[ordinal] = Number.NaN
  }

  /** Offset of the NUL that ends `entry`. */
  private end(entry: number): number {
    return (entry + 1 < this.count ? (this.starts[entry + 1] as number) : this.used) - 1
  }

  private reserve(bytes: number): void {
    if (this.used + bytes + 1 <= this.data.length) return
    const data = Buffer.alloc(Math.max(this.data.length * 2, this.used + bytes + 1))
    this.data.copy(data, 0, 0, this.used)
    this.data = data
  }

  /** Rewrites the buffer with current values only, in ordinal order. */
  private compact(): void {
    const data = Buffer.alloc(Math.max(1 << 16, this.liveBytes * 2))
    const starts = new Int32Array(Math.max(1024, this.present * 2))
    const owners = new Int32Array(starts.length)
    let used = 1
    let count = 0
    for (let o = 0; o < this.current.length; o++) {
      const entry = (this.current[o] as number) - 1
      if (entry < 0) continue
      const start = this.starts[entry] as number
      const end = this.end(entry)
      this.data.copy(data, used, start, end + 1)
      starts[count] = used
      owners[count] = o
      count++
      this.current[o] = count
      used += end - start + 1
    }
    this.data = data
    this.starts = starts
    this.owners = owners
    this.count = count
    this.used = used
  }

  /** The entry whose bytes include offset `at` (the last entry starting at or before it). */
  private entryAt(at: number): number {
    let lo = 0
    let hi = this.count - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if ((this.starts[mid] as number) <= at) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /**
   * Marks the users whose current value holds an occurrence of `needle`; `skip` is how many bytes
   * of the needle come before the value (1 when it starts with the NUL before a value).
   */
  private search(needle: Buffer, skip: number, out: Bitset): Bitset {
    const haystack = this.data.subarray(0, this.used)
    let from = 0
    for (;;) {
      const at = haystack.indexOf(needle, from)
      if (at === -1) return out
      const entry = this.entryAt(at + skip)
      const owner = this.owners[entry] as number
      if (this.current[owner] === entry + 1) setBit(out, this.base + owner)
      // Resume at the NUL that ends this entry: the next entry may start with it.
      from = this.end(entry)
    }
  }

  selectPresent(out: Bitset): void {
    const current = this.current
    const base = this.base
    for (let o = 0; o < current.length; o++) if (current[o] !== 0) setBit(out, base + o)
  }

  selectEqual(value: string, out: Bitset): void {
    // Stored values are never empty ("" clears) and never hold NUL.
    if (value === '' || value.includes('\0')) return
    this.search(Buffer.from(`\0${value}\0`, 'utf8'), 1, out)
  }

  selectOneOf(values: readonly string[], out: Bitset): void {
    if (values.length <= SEARCHES_PER_SET) {
      for (const v of new Set(values)) {
        if (v !== '' && !v.includes('\0')) this.search(Buffer.from(`\0${v}\0`, 'utf8'), 1, out)
      }
      return
    }
    // Compare UTF-8 bytes as latin1 strings: one byte per character, so equal strings are equal bytes.
    const wanted = new Set(values.map((v) => Buffer.from(v, 'utf8').toString('latin1')))
    for (let o = 0; o < this.current.length; o++) {
      const entry = (this.current[o] as number) - 1
      if (entry < 0) continue
      if (wanted.has(this.data.toString('latin1', this.starts[entry] as number, this.end(entry)))) {
        setBit(out, this.base + o)
      }
    }
  }

  selectContaining(needle: string, out: Bitset): void {
    if (needle === '') return this.selectPresent(out)
    if (needle.includes('\0')) return
    this.search(Buffer.from(needle, 'utf8'), 0, out)
  }

  selectStartingWith(prefix: string, out: Bitset): void {
    if (prefix === '') return this.selectPresent(out)
    if (prefix.includes('\0')) return
    this.search(Buffer.from(`\0${prefix}`, 'utf8'), 1, out)
  }

  selectNumeric(op: NumericOp, bound: number, out: Bitset): void {
    const numbers = this.numbers
    if (numbers === undefined) return
    for (let o = 0; o < numbers.length; o++)
      if (compareNumber(numbers[o] as number, op, bound)) setBit(out, this.base + o)
  }

  selectDate(w: DateWindow, out: Bitset): void {
    const dates = this.dates
    if (dates === undefined) return
    const kinds = this.kinds
    const INSTANT = KIND_INSTANT
    const DAY = KIND_DAY
    const { from, to, fromDay, toDay } = w
    const base = this.base
    for (let o = 0; o < kinds.length; o++) {
      const k = kinds[o]
      if (k !== INSTANT && k !== DAY) continue
      const x = dates[o] as number
      if (k === INSTANT ? x >= from && x < to : x >= fromDay && x < toDay) setBit(out, base + o)
    }
  }

  addValueTypes(out: ValueTypes): void {
    // One pass with local counters (the catalog runs this over every user of every packed column).
    const kinds = this.kinds
    const numbers = this.numbers
    const dates = this.dates
    // Imported constants read in a hot loop are slow (not folded): copy them to locals first.
    const NUMBER = KIND_NUMBER
    const INSTANT = KIND_INSTANT
    const DAY = KIND_DAY
    const count = new Int32Array(6)
    let numberMin = Infinity
    let numberMax = -Infinity
    let instantMin = Infinity
    let instantMax = -Infinity
    let dayMin = Infinity
    let dayMax = -Infinity
    for (let o = 0; o < kinds.length; o++) {
      const k = kinds[o] as number
      if (k === 0) continue
      count[k] = (count[k] as number) + 1
      if (k === NUMBER) {
        const n = (numbers as Float64Array)[o] as number
        if (n < numberMin) numberMin = n
        if (n > numberMax) numberMax = n
      } else if (k === INSTANT) {
        const x = (dates as Float64Array)[o] as number
        if (x < instantMin) instantMin = x
        if (x > instantMax) instantMax = x
      } else if (k === DAY) {
        const x = (dates as Float64Array)[o] as number
        if (x < dayMin) dayMin = x
        if (x > dayMax) dayMax = x
      }
    }
    out.strings += count[KIND_STRING] as number
    out.numbers += count[KIND_NUMBER] as number
    out.booleans += count[KIND_BOOLEAN] as number
    out.dates += (count[KIND_INSTANT] as number) + (count[KIND_DAY] as number)
    out.numberMin = Math.min(out.numberMin, numberMin)
    out.numberMax = Math.max(out.numberMax, numberMax)
    out.instantMin = Math.min(out.instantMin, instantMin)
    out.instantMax = Math.max(out.instantMax, instantMax)
    out.dayMin = Math.min(out.dayMin, dayMin)
    out.dayMax = Math.max(out.dayMax, dayMax)
  }

  memoryBytes(): number {
    return (
      this.data.byteLength +
      this.starts.byteLength +
      this.owners.byteLength +
      this.current.byteLength +
      (this.numbers?.byteLength ?? 0) +
      this.kinds.byteLength +
      (this.dates?.byteLength ?? 0)
    )
  }
}

/**
 * A high-cardinality attribute: {@link PackedPart}s of {@link PART_ORDINALS} users each. Every
 * select runs over each part into one bitset.
 */
export class PackedColumn implements Column {
  private readonly parts: PackedPart[] = []

  /** @param partOrdinals users per part (tests lower it to cross part boundaries). */
  constructor(
    readonly name: string,
    private capacity: number,
    private readonly partOrdinals = PART_ORDINALS,
  ) {}

  get present(): number {
    let n = 0
    for (const part of this.parts) n += part.present
    return n
  }

  /** The column's state as typed arrays for another thread; this column must not be used afterwards. */
  snapshot(transfer: TransferList): PackedColumnSnapshot {
    return {
      kind: 'packed',
      name: this.name,
      capacity: this.capacity,
      partOrdinals: this.partOrdinals,
      parts: this.parts.map((part) => part.snapshot(transfer)),
    }
  }

  /** The column a {@link snapshot} describes, over the same memory: O(parts). */
  static restore(s: PackedColumnSnapshot): PackedColumn {
    const column = new PackedColumn(s.name, s.capacity, s.partOrdinals)
    for (const part of s.parts) column.parts.push(PackedPart.restore(part))
    return column
  }

  grow(capacity: number): void {
    this.capacity = capacity
    const last = this.parts[this.parts.length - 1]
    last?.grow(Math.min(this.partOrdinals, capacity - last.base))
  }

  set(ordinal: number, value: string | undefined): void {
    const p = Math.floor(ordinal / this.partOrdinals)
    if (p >= this.parts.length) {
      if (value === undefined) return
      // Ordinals beyond a part live in the next one: every part but the last is full size.
      this.parts[this.parts.length - 1]?.grow(this.partOrdinals)
      while (this.parts.length <= p) {
        const base = this.parts.length * this.partOrdinals
        const size = Math.min(this.partOrdinals, Math.max(this.capacity - base, ordinal - base + 1))
        if (this.parts.length < p) this.parts.push(new PackedPart(base, this.partOrdinals))
        else this.parts.push(new PackedPart(base, size))
      }
    }
    ;(this.parts[p] as PackedPart).set(ordinal - p * this.partOrdinals, value)
  }

  /** Selects whole parts: those starting in `from` … `to` - 1 (bits past the bitset's end are never written). */
  selector(query: ColumnQuery): Selector {
    const select = partSelector(query)
    return (out, from, to) => {
      for (const part of this.parts) if (part.base >= from && part.base < to) select(part, out)
    }
  }

  private run(query: ColumnQuery, bits: number): Bitset {
    const out = createBitset(bits)
    this.selector(query)(out, 0, bits)
    return out
  }

  selectPresent(bits: number): Bitset {
    return this.run({ op: 'present' }, bits)
  }

  selectEqual(value: string, bits: number): Bitset {
    return this.run({ op: 'equal', value }, bits)
  }

  selectOneOf(values: readonly string[], bits: number): Bitset {
    return this.run({ op: 'oneOf', values }, bits)
  }

  selectContaining(needle: string, bits: number): Bitset {
    return this.run({ op: 'containing', needle }, bits)
  }

  selectStartingWith(prefix: string, bits: number): Bitset {
    return this.run({ op: 'startingWith', prefix }, bits)
  }

  selectNumeric(op: NumericOp, bound: number, bits: number): Bitset {
    return this.run({ op: 'numeric', numOp: op, bound }, bits)
  }

  selectDate(window: DateWindow, bits: number): Bitset {
    return this.run({ op: 'date', window }, bits)
  }

  valueTypes(): ValueTypes {
    const out = new ValueTypes()
    for (const part of this.parts) part.addValueTypes(out)
    return out
  }

  /** {@link valueTypes} a part at a time, asking `turn` (see ProjectIndex.evaluateInSlices) before each. */
  async valueTypesInSlices(turn: () => Promise<void> | undefined): Promise<ValueTypes> {
    const out = new ValueTypes()
    for (const part of this.parts) {
      for (let wait = turn(); wait !== undefined; wait = turn()) await wait
      part.addValueTypes(out)
    }
    return out
  }

  /** Not counted: that would take the dictionary this column exists to avoid. */
  distinctValues(): null {
    return null
  }

  topValues(): { value: string; users: number }[] {
    return []
  }

  /** Overwritten bytes are compacted here, so nothing counts as dead for a rebuild. */
  entries(): { total: number; dead: number } {
    return { total: this.present, dead: 0 }
  }

  memoryBytes(): number {
    let bytes = 0
    for (const part of this.parts) bytes += part.memoryBytes()
    return bytes
  }
}

/** What one part does for `query`, setting bits in `out`. */
function partSelector(query: ColumnQuery): (part: PackedPart, out: Bitset) => void {
  switch (query.op) {
    case 'present':
      return (part, out) => part.selectPresent(out)
    case 'equal':
      return (part, out) => part.selectEqual(query.value, out)
    case 'oneOf':
      return (part, out) => part.selectOneOf(query.values, out)
    case 'containing':
      return (part, out) => part.selectContaining(query.needle, out)
    case 'startingWith':
      return (part, out) => part.selectStartingWith(query.prefix, out)
    case 'numeric':
      return (part, out) => part.selectNumeric(query.numOp, query.bound, out)
    case 'date':
      return (part, out) => part.selectDate(query.window, out)
  }
}

interface PackedPartSnapshot {
  readonly base: number
  readonly present: number
  readonly data: Uint8Array<ArrayBuffer>
  readonly used: number
  readonly liveBytes: number
  readonly starts: Int32Array<ArrayBuffer>
  readonly owners: Int32Array<ArrayBuffer>
  readonly count: number
  readonly current: Int32Array<ArrayBuffer>
  readonly numbers: Float64Array<ArrayBuffer> | undefined
  readonly kinds: Uint8Array<ArrayBuffer>
  readonly dates: Float64Array<ArrayBuffer> | undefined
}

/** What {@link PackedColumn.snapshot} hands to another thread. */
export interface PackedColumnSnapshot {
  readonly kind: 'packed'
  readonly name: string
  readonly capacity: number
  readonly partOrdinals: number
  readonly parts: readonly PackedPartSnapshot[]
}

function grown(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(array.length * 2)
  bigger.set(array)
  return bigger
}
