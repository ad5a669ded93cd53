import { parseNumericText } from '../core/segment.js'
import { createBitset, type Bitset } from './bitset.js'

/**
 * One attribute of one project, column-wise: a dictionary of its distinct values and, per user
 * ordinal, the code of its value (0 = the user lacks the attribute). 4 bytes per user plus the
 * dictionary; a value is parsed as a number once, when it enters the dictionary.
 */
export class AttributeColumn {
  /** Per ordinal: 0 = absent, else index into `values`. */
  codes: Int32Array
  /** Code → value; entry 0 is unused. Entries whose count fell to 0 stay (codes are never reused). */
  readonly values: string[] = ['']
  private readonly dictionary = new Map<string, number>()
  /** Code → number under NUMBER_PATTERN, NaN when the value is not a number. */
  private numbers = new Float64Array(16)
  /** Code → users currently holding the value. */
  private counts = new Int32Array(16)
  /** Users holding any value. */
  present = 0
  /** Distinct values currently held by at least one user. */
  liveValues = 0

  constructor(
    readonly name: string,
    capacity: number,
  ) {
    this.codes = new Int32Array(capacity)
  }

  grow(capacity: number): void {
    const codes = new Int32Array(capacity)
    codes.set(this.codes)
    this.codes = codes
  }

  /** Code of `value`, 0 when no user ever had it. */
  codeOf(value: string): number {
    return this.dictionary.get(value) ?? 0
  }

  numberOf(code: number): number {
    return this.numbers[code] as number
  }

  countOf(code: number): number {
    return this.counts[code] as number
  }

  /** Sets (or with undefined, clears) the value of user `ordinal`. */
  set(ordinal: number, value: string | undefined): void {
    const old = this.codes[ordinal] as number
    const code = value === undefined ? 0 : this.intern(value)
    if (old === code) return
    if (old !== 0) {
      this.present--
      if (--this.counts[old]! === 0) this.liveValues--
    }
    if (code !== 0) {
      this.present++
      if (this.counts[code]!++ === 0) this.liveValues++
    }
    this.codes[ordinal] = code
  }

  private intern(value: string): number {
    let code = this.dictionary.get(value)
    if (code !== undefined) return code
    code = this.values.length
    this.values.push(value)
    this.dictionary.set(value, code)
    if (code >= this.numbers.length) {
      const numbers = new Float64Array(this.numbers.length * 2)
      numbers.set(this.numbers)
      this.numbers = numbers
      const counts = new Int32Array(this.counts.length * 2)
      counts.set(this.counts)
      this.counts = counts
    }
    this.numbers[code] = parseNumericText(value) ?? NaN
    return code
  }

  /** Dictionary codes whose value passes `test`; entry 0 (absent) is never marked. */
  markValues(test: (value: string, code: number) => boolean): Uint8Array {
    const mark = new Uint8Array(this.values.length)
    for (let c = 1; c < this.values.length; c++)
      if (this.counts[c] !== 0 && test(this.values[c] as string, c)) mark[c] = 1
    return mark
  }

  /** Users (among the first `bits` ordinals) whose code is marked. */
  select(mark: Uint8Array, bits: number): Bitset {
    const out = createBitset(bits)
    const codes = this.codes
    for (let w = 0; w < out.length; w++) {
      const base = w << 5
      const end = Math.min(32, bits - base)
      let word = 0
      for (let b = 0; b < end; b++) if (mark[codes[base + b] as number] === 1) word |= 1 << b
      out[w] = word
    }
    return out
  }

  /** Users whose code is exactly `code` (a single-value test without a mark array). */
  selectCode(code: number, bits: number): Bitset {
    const out = createBitset(bits)
    const codes = this.codes
    for (let w = 0; w < out.length; w++) {
      const base = w << 5
      const end = Math.min(32, bits - base)
      let word = 0
      for (let b = 0; b < end; b++) if (codes[base + b] === code) word |= 1 << b
      out[w] = word
    }
    return out
  }

  /** Values held now with their user counts, most users first (ties by value), at most `limit`. */
  topValues(limit: number): { value: string; users: number }[] {
    const top: { value: string; users: number }[] = []
    for (let c = 1; c < this.values.length; c++) {
      const users = this.counts[c] as number
      if (users > 0) top.push({ value: this.values[c] as string, users })
    }
    top.sort((a, b) => b.users - a.users || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
    return top.slice(0, limit)
  }

  /** Approximate bytes held: typed arrays plus the dictionary (strings ~2 bytes a char + ~60 per entry). */
  memoryBytes(): number {
    let dict = 0
    for (let c = 1; c < this.values.length; c++) dict += 60 + 2 * (this.values[c] as string).length
    return this.codes.byteLength + this.numbers.byteLength + this.counts.byteLength + dict
  }
}
