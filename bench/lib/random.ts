/**
 * Seeded randomness for the benchmark: the load generator and the direct-store run must build
 * the very same batches, so nothing here reads Math.random.
 */

/** A 32-bit PRNG (mulberry32): fast, good enough for test data, reproducible from its seed. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A bijection on 32-bit integers (Wellons' "lowbias32"): distinct inputs give distinct,
 * random-looking outputs, so user number i maps to a unique id with no lookup table.
 */
export function scramble32(x: number): number {
  x = x >>> 0
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d) >>> 0
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b) >>> 0
  x ^= x >>> 16
  return x >>> 0
}

/** Samples ranks 0..n-1 with probability ∝ 1/(rank+1)^s (Zipf), by binary search over the CDF. */
export function createZipf(n: number, s = 1): (random: () => number) => number {
  const cdf = new Float64Array(n)
  let total = 0
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s)
    cdf[k] = total
  }
  for (let k = 0; k < n; k++) cdf[k] = (cdf[k] as number) / total
  return (random) => {
    const u = random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((cdf[mid] as number) < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
