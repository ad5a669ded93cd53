/**
 * Fixed-size bitsets over user ordinals: bit `o` of word `o >>> 5`. All binary operations take
 * operands of the same length (the index hands out bitsets sized to its current capacity).
 */
export type Bitset = Uint32Array

/** A bitset with room for `bits` ordinals, all clear. */
export function createBitset(bits: number): Bitset {
  return new Uint32Array((bits + 31) >>> 5)
}

export function hasBit(set: Bitset, o: number): boolean {
  return ((set[o >>> 5] ?? 0) & (1 << (o & 31))) !== 0
}

export function setBit(set: Bitset, o: number): void {
  set[o >>> 5] = (set[o >>> 5] ?? 0) | (1 << (o & 31))
}

export function clearBit(set: Bitset, o: number): void {
  set[o >>> 5] = (set[o >>> 5] ?? 0) & ~(1 << (o & 31))
}

/** `a &= b`, returns a. */
export function andInto(a: Bitset, b: Bitset): Bitset {
  for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) & (b[i] as number)
  return a
}

/** `a &= ~b`, returns a. */
export function andNotInto(a: Bitset, b: Bitset): Bitset {
  for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) & ~(b[i] as number)
  return a
}

/** `a |= b`, returns a. */
export function orInto(a: Bitset, b: Bitset): Bitset {
  for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) | (b[i] as number)
  return a
}

/** `a = universe & ~a`, returns a. */
export function complementInto(a: Bitset, universe: Bitset): Bitset {
  for (let i = 0; i < a.length; i++) a[i] = (universe[i] as number) & ~(a[i] as number)
  return a
}

/** Number of set bits. */
export function countBits(set: Bitset): number {
  let n = 0
  for (let i = 0; i < set.length; i++) {
    let v = set[i] as number
    if (v === 0) continue
    // SWAR popcount (Hacker's Delight 5-2).
    v = v - ((v >>> 1) & 0x55555555)
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
    n += (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
  }
  return n
}
