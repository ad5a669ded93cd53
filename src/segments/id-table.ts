import { asBuffer, type TransferList } from './transfer.js'

/** Bytes per storage chunk of user ids: an id never straddles two, so every offset fits an Int32. */
const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
const INITIAL_USERS = 1024
/** Size of a new chunk; it doubles as ids arrive, up to the chunk size. */
const FIRST_CHUNK_BYTES = 64 * 1024
/** Ids moved from the old hash table to the new one per `add` while the table doubles (≥ 1 is enough). */
const MIGRATE_PER_ADD = 4

/**
 * The user ids of one project, as ordinals: `add` gives each new id the next ordinal, `lookup` finds
 * an id's ordinal, `idOf` gives the id back. Built from typed arrays and buffers only, so no
 * engine object-count limit applies (a V8 `Map` throws past 2^24 entries, and a JS array of a
 * hundred million strings would not fit the heap): ids are stored as UTF-8 in chunks of
 * {@link DEFAULT_CHUNK_BYTES}, and an open-addressing hash table of ordinals finds them. About
 * UTF-8 length + 22 bytes per user (offset 8, length 2, hash 4, 4–8 in the table).
 *
 * UTF-8 byte order is code point order, so {@link compare} orders ids exactly as the API pages them.
 */
export class IdTable {
  private readonly chunkBytes: number
  private chunks: Buffer[] = []
  /** Bytes used in the last chunk. */
  private chunkUsed = 0
  /** Ordinal → chunk index × chunkBytes + offset (exact below 2^53). */
  private starts = new Float64Array(INITIAL_USERS)
  /** Ordinal → UTF-8 length in bytes. */
  private lengths = new Uint16Array(INITIAL_USERS)
  /** Ordinal → hash of the id, so the table grows without reading ids back and probes skip most byte compares. */
  private hashes = new Int32Array(INITIAL_USERS)
  /** Open addressing, linear probing: ordinal + 1, 0 = empty. At most half full. */
  private slots = new Int32Array(2 * INITIAL_USERS)
  /** While the table doubles: the previous table, holding ordinals below `oldSize`, of which those below `migrated` are in `slots` too. */
  private oldSlots: Int32Array | undefined
  private oldSize = 0
  private migrated = 0
  /** Where a probe's id is encoded for byte comparison. */
  private scratch = Buffer.alloc(1024)
  /** Ids held (ordinals 0 … size-1). */
  size = 0

  /** @param chunkBytes bytes per storage chunk (tests lower it to cross chunk boundaries). */
  constructor(chunkBytes = DEFAULT_CHUNK_BYTES) {
    this.chunkBytes = chunkBytes
  }

  /** The ordinal of `id`, or -1. */
  lookup(id: string): number {
    const h = hashOf(id)
    const found = this.probe(this.slots, id, h)
    // Mid-migration, ids not moved yet are only in the old table (which still holds every id below `oldSize`).
    if (found >= 0 || this.oldSlots === undefined) return found
    return this.probe(this.oldSlots, id, h)
  }

  private probe(slots: Int32Array, id: string, h: number): number {
    const mask = slots.length - 1
    let encoded = -1
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = slots[i] as number
      if (s === 0) return -1
      const o = s - 1
      if (this.hashes[o] !== h) continue
      if (encoded < 0) encoded = this.encode(id)
      if (this.lengths[o] === encoded && this.equalsScratch(o, encoded)) return o
    }
  }

  /** Appends `id` (which must not be held yet) and returns its ordinal. */
  add(id: string): number {
    const o = this.size
    if (o === this.starts.length) this.growUsers()
    const n = this.encode(id)
    if (n > 0xffff) throw new Error('A user id longer than 65,535 UTF-8 bytes cannot be indexed')
    let chunk = this.chunks[this.chunks.length - 1]
    if (chunk !== undefined && this.chunkUsed + n > chunk.length && chunk.length < this.chunkBytes) {
      // The last chunk starts small and doubles up to chunkBytes: offsets in it stay valid.
      const bigger = Buffer.allocUnsafe(Math.min(this.chunkBytes, Math.max(2 * chunk.length, this.chunkUsed + n)))
      chunk.copy(bigger, 0, 0, this.chunkUsed)
      chunk = bigger
      this.chunks[this.chunks.length - 1] = chunk
    }
    if (chunk === undefined || this.chunkUsed + n > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(Math.min(this.chunkBytes, FIRST_CHUNK_BYTES), n))
      this.chunks.push(chunk)
      this.chunkUsed = 0
    }
    this.scratch.copy(chunk, this.chunkUsed, 0, n)
    this.starts[o] = (this.chunks.length - 1) * this.chunkBytes + this.chunkUsed
    this.lengths[o] = n
    this.chunkUsed += n
    const h = hashOf(id)
    this.hashes[o] = h
    this.size = o + 1
    if (this.oldSlots !== undefined) this.migrate(MIGRATE_PER_ADD)
    if (2 * this.size > this.slots.length) this.growSlots()
    this.place(this.slots, o, h)
    return o
  }

  /** The id of ordinal `o`. */
  idOf(o: number): string {
    const start = this.starts[o] as number
    const chunk = this.chunks[Math.floor(start / this.chunkBytes)] as Buffer
    const at = start % this.chunkBytes
    return chunk.toString('utf8', at, at + (this.lengths[o] as number))
  }

  /** Negative, 0 or positive as id `a` sorts before, with or after id `b` (code point order). */
  compare(a: number, b: number): number {
    const sa = this.starts[a] as number
    const sb = this.starts[b] as number
    const ca = this.chunks[Math.floor(sa / this.chunkBytes)] as Buffer
    const cb = this.chunks[Math.floor(sb / this.chunkBytes)] as Buffer
    const oa = sa % this.chunkBytes
    const ob = sb % this.chunkBytes
    return ca.compare(cb, ob, ob + (this.lengths[b] as number), oa, oa + (this.lengths[a] as number))
  }

  /** Like {@link compare}, against `bytes` (an id encoded with {@link encodeId}). */
  compareTo(o: number, bytes: Buffer): number {
    const s = this.starts[o] as number
    const chunk = this.chunks[Math.floor(s / this.chunkBytes)] as Buffer
    const at = s % this.chunkBytes
    return chunk.compare(bytes, 0, bytes.length, at, at + (this.lengths[o] as number))
  }

  /** The table's state as typed arrays for another thread; this table must not be used afterwards. */
  snapshot(transfer: TransferList): IdTableSnapshot {
    return {
      chunkBytes: this.chunkBytes,
      chunks: this.chunks.map((chunk) => transfer.add(chunk)),
      chunkUsed: this.chunkUsed,
      starts: transfer.add(this.starts),
      lengths: transfer.add(this.lengths),
      hashes: transfer.add(this.hashes),
      slots: transfer.add(this.slots),
      oldSlots: this.oldSlots === undefined ? undefined : transfer.add(this.oldSlots),
      oldSize: this.oldSize,
      migrated: this.migrated,
      size: this.size,
    }
  }

  /** The table a {@link snapshot} describes, over the same memory: O(chunks), no per-id work. */
  static restore(s: IdTableSnapshot): IdTable {
    const table = new IdTable(s.chunkBytes)
    table.chunks = s.chunks.map(asBuffer)
    table.chunkUsed = s.chunkUsed
    table.starts = s.starts
    table.lengths = s.lengths
    table.hashes = s.hashes
    table.slots = s.slots
    table.oldSlots = s.oldSlots
    table.oldSize = s.oldSize
    table.migrated = s.migrated
    table.size = s.size
    return table
  }

  /** Bytes held. */
  memoryBytes(): number {
    let bytes =
      this.starts.byteLength +
      this.lengths.byteLength +
      this.hashes.byteLength +
      this.slots.byteLength +
      (this.oldSlots?.byteLength ?? 0)
    for (const chunk of this.chunks) bytes += chunk.length
    return bytes
  }

  private encode(id: string): number {
    // A UTF-16 code unit is at most 3 UTF-8 bytes.
    if (id.length * 3 > this.scratch.length) this.scratch = Buffer.alloc(id.length * 3)
    return this.scratch.write(id, 0, 'utf8')
  }

  private equalsScratch(o: number, n: number): boolean {
    const s = this.starts[o] as number
    const chunk = this.chunks[Math.floor(s / this.chunkBytes)] as Buffer
    const at = s % this.chunkBytes
    return this.scratch.compare(chunk, at, at + n, 0, n) === 0
  }

  private place(slots: Int32Array, o: number, h: number): void {
    const mask = slots.length - 1
    let i = h & mask
    while (slots[i] !== 0) i = (i + 1) & mask
    slots[i] = o + 1
  }

  private growUsers(): void {
    this.reserve(this.starts.length * 2)
  }

  /** Room for `capacity` ids before the per-user arrays must grow again. */
  reserve(capacity: number): void {
    if (capacity <= this.starts.length) return
    const starts = new Float64Array(capacity)
    starts.set(this.starts)
    this.starts = starts
    const lengths = new Uint16Array(capacity)
    lengths.set(this.lengths)
    this.lengths = lengths
    const hashes = new Int32Array(capacity)
    hashes.set(this.hashes)
    this.hashes = hashes
  }

  /**
   * Doubles the table without rehashing everything at once (at 16M ids that is seconds on the
   * event loop): the old table stays for lookups while each later `add` moves a few of its ids.
   * The new table is full again only after `oldSize` more adds, by when all have moved.
   */
  private growSlots(): void {
    if (this.oldSlots !== undefined) this.migrate(this.oldSize)
    this.oldSlots = this.slots
    this.oldSize = this.size - 1
    this.migrated = 0
    this.slots = new Int32Array(this.slots.length * 2)
  }

  private migrate(count: number): void {
    const end = Math.min(this.oldSize, this.migrated + count)
    for (let o = this.migrated; o < end; o++) this.place(this.slots, o, this.hashes[o] as number)
    this.migrated = end
    if (end === this.oldSize) this.oldSlots = undefined
  }
}

/** What {@link IdTable.snapshot} hands to another thread. */
export interface IdTableSnapshot {
  readonly chunkBytes: number
  readonly chunks: readonly Uint8Array<ArrayBuffer>[]
  readonly chunkUsed: number
  readonly starts: Float64Array<ArrayBuffer>
  readonly lengths: Uint16Array<ArrayBuffer>
  readonly hashes: Int32Array<ArrayBuffer>
  readonly slots: Int32Array<ArrayBuffer>
  readonly oldSlots: Int32Array<ArrayBuffer> | undefined
  readonly oldSize: number
  readonly migrated: number
  readonly size: number
}

/** UTF-8 bytes of `id`, for {@link IdTable.compareTo}. */
export function encodeId(id: string): Buffer {
  return Buffer.from(id, 'utf8')
}

/** FNV-1a over UTF-16 code units, then a finaliser so low bits (the table index) mix well. */
function hashOf(id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  return h
}
