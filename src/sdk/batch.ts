/**
 * Packing records into requests, pure: no I/O, no timers. The upload loop in `upload-profiles.ts`
 * feeds records in and sends what comes out.
 *
 * Rules (spec §3, `core/limits.ts`): at most {@link MAX_USERS} rows and {@link MAX_FIELDS} fields per
 * request, `user_id` in every one. A record with more than `MAX_FIELDS - 1` attributes is split into
 * several chunks, each carrying `user_id`. Chunks are grouped by their exact field set, so a request
 * never carries a `""` the record did not have (`""` clears an attribute; padding would erase data).
 */
import { MAX_FIELD_NAME, MAX_FIELDS, MAX_USERS, USER_ID_FIELD } from '../core/limits.js'
import { parseUploadBody } from '../core/upload.js'

/** A value the API accepts: numbers and booleans are stored as their JSON text; `""` clears the attribute. */
export type AttributeValue = string | number | boolean

/**
 * One user's row: `user_id` plus attributes. Attributes set to `undefined` are left out (untouched on
 * the server); `""` clears an attribute.
 */
export interface ProfileRecord {
  readonly user_id: string
  readonly [attribute: string]: AttributeValue | undefined
}

/** A part of one record that fits in one request: `names[0]` is `user_id`, `values[0]` the user id. */
export interface RecordChunk {
  readonly names: readonly string[]
  readonly values: readonly AttributeValue[]
}

export type SplitResult =
  | { readonly ok: true; readonly userId: string; readonly chunks: readonly RecordChunk[] }
  | { readonly ok: false; readonly userId: string | undefined; readonly reason: string }

const ATTRIBUTES_PER_CHUNK = MAX_FIELDS - 1

/**
 * Validates a record with the server's own validator (`parseUploadBody`, one set of rules) and
 * splits it into chunks of at most `MAX_FIELDS - 1` attributes, in the record's key order. Never throws.
 */
export function splitRecord(record: unknown): SplitResult {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    return { ok: false, userId: undefined, reason: `a row must be an object with a "${USER_ID_FIELD}"` }
  }
  const source = record as Record<string, unknown>
  const rawId = Object.prototype.hasOwnProperty.call(source, USER_ID_FIELD) ? source[USER_ID_FIELD] : undefined
  const userId = typeof rawId === 'string' ? rawId : undefined
  if (rawId === undefined) return { ok: false, userId, reason: `"${USER_ID_FIELD}" is missing` }

  const names: string[] = []
  const values: unknown[] = []
  for (const key of Object.keys(source)) {
    if (key === USER_ID_FIELD) continue
    const v = source[key]
    if (v === undefined) continue
    names.push(key)
    values.push(v)
  }

  const chunkNameLists = chunkNamesFor(names)
  const chunks: RecordChunk[] = []
  for (let k = 0; k < chunkNameLists.length; k++) {
    const start = k * ATTRIBUTES_PER_CHUNK
    const chunkNames = chunkNameLists[k] as string[]
    const chunkValues = [rawId, ...values.slice(start, start + ATTRIBUTES_PER_CHUNK)]
    const parsed = parseUploadBody({ field_name: chunkNames, values: [chunkValues] })
    if (!parsed.ok) return { ok: false, userId, reason: describeIssue(parsed.error[0], chunkNames) }
    chunks.push({ names: chunkNames, values: chunkValues as AttributeValue[] })
  }
  return { ok: true, userId: rawId as string, chunks }
}

// Rows of one file share their field names: handing out the same arrays for the same names lets
// the packer find a row's group by identity instead of re-serialising 50 names per row.
let lastNames: readonly string[] = []
let lastChunkNames: readonly (readonly string[])[] = [[USER_ID_FIELD]]

function chunkNamesFor(names: readonly string[]): readonly (readonly string[])[] {
  if (names.length === lastNames.length && names.every((n, i) => n === lastNames[i])) return lastChunkNames
  const lists: string[][] = []
  for (let start = 0; start === 0 || start < names.length; start += ATTRIBUTES_PER_CHUNK) {
    lists.push([USER_ID_FIELD, ...names.slice(start, start + ATTRIBUTES_PER_CHUNK)])
  }
  lastNames = names
  lastChunkNames = lists
  return lists
}

function describeIssue(issue: { path: string; message: string } | undefined, names: readonly string[]): string {
  if (issue === undefined) return 'invalid row'
  const nameAt = /^field_name\[(\d+)\]$/.exec(issue.path)
  if (nameAt) {
    // Some messages quote the name already (`"…" is longer than 50 characters`).
    if (issue.message.startsWith('"')) return `attribute name ${issue.message}`
    const name = names[Number(nameAt[1])] ?? ''
    const shown = name.length > MAX_FIELD_NAME ? `${name.slice(0, MAX_FIELD_NAME)}…` : name
    return `attribute name ${JSON.stringify(shown)}: ${issue.message}`
  }
  // Value issues already name their field (`field "age": …`, `user_id must be …`).
  if (/^values\[0\]\[\d+\]$/.test(issue.path)) return issue.message
  return `${issue.path}: ${issue.message}`
}

const NONE: readonly never[] = []
const keys = new WeakMap<readonly string[], string>()

/** The group key of a field list: JSON text is unambiguous whatever the names contain. */
function keyOf(names: readonly string[]): string {
  let key = keys.get(names)
  if (key === undefined) {
    key = JSON.stringify(names)
    keys.set(names, key)
  }
  return key
}

/** One request's worth of rows sharing one field set. */
export interface PackedBatch {
  /** Creation order; a batch only ever waits for batches with a smaller `seq`. */
  readonly seq: number
  /** `user_id` first. */
  readonly fieldNames: readonly string[]
  readonly values: readonly (readonly AttributeValue[])[]
  /** The input index of each row in `values`. */
  readonly rowIndexes: readonly number[]
}

interface Batch extends PackedBatch {
  readonly key: string
  readonly nameSet: ReadonlySet<string>
  readonly values: AttributeValue[][]
  readonly rowIndexes: number[]
  readonly userIds: Set<string>
  /** Batches that must complete before this one is sent: they write an attribute of a user this one writes too. */
  readonly waitsFor: Set<Batch>
  state: 'open' | 'sealed' | 'sending' | 'done'
}

/** Bounds on what the packer holds back while it waits for more rows of the same field set. */
export interface PackerOptions {
  /**
   * Rows held in partly filled batches before the oldest is sealed and sent as is.
   * @default 2000
   */
  readonly maxOpenRows?: number
  /**
   * Partly filled batches (distinct field sets) held at once before the oldest is sealed.
   * @default 64
   */
  readonly maxOpenBatches?: number
}

/**
 * Groups record chunks into batches and decides when each may be sent.
 *
 * Order: a later row of a user must not reach the server before an earlier row of that user that
 * writes one of the same attributes, or the older value would win. Rows in one request apply in
 * order on the server, so only rows in different requests need care: a batch records the earlier,
 * still unfinished batches it overlaps with (`waitsFor`) and is handed out only once they are done.
 * A row never joins an open batch older than a batch it must wait for (it starts a new batch
 * instead), so waits always point to older batches and can never form a cycle.
 */
export class BatchPacker {
  readonly #open = new Map<string, Batch>()
  readonly #sealed: Batch[] = []
  /** Unfinished batches per user id: the only ones a new row may have to wait for. */
  readonly #pending = new Map<string, Batch[]>()
  readonly #maxOpenRows: number
  readonly #maxOpenBatches: number
  #openRows = 0
  #seq = 0

  constructor(options: PackerOptions = {}) {
    this.#maxOpenRows = options.maxOpenRows ?? 2000
    this.#maxOpenBatches = options.maxOpenBatches ?? 64
  }

  /** Batches sealed and not yet handed out (ready or still waiting). */
  get sealedCount(): number {
    return this.#sealed.length
  }

  /** Partly filled batches. */
  get openCount(): number {
    return this.#open.size
  }

  /** Adds one chunk of the row at `index`. May seal batches (full, or to respect the bounds). */
  add(index: number, chunk: RecordChunk): void {
    const userId = chunk.values[0] as string
    const key = keyOf(chunk.names)
    let target = this.#open.get(key)
    const pending = this.#pending.get(userId)
    const earlier =
      pending === undefined
        ? NONE
        : pending.filter((b) => b !== target && chunk.names.some((n, i) => i > 0 && b.nameSet.has(n)))
    if (target !== undefined && earlier.some((b) => b.seq > target!.seq)) {
      this.#seal(target)
      target = undefined
    }
    if (target === undefined) {
      target = this.#create(key, chunk.names)
    }
    for (const b of earlier) target.waitsFor.add(b)
    target.values.push(chunk.values as AttributeValue[])
    target.rowIndexes.push(index)
    this.#openRows++
    if (!target.userIds.has(userId)) {
      target.userIds.add(userId)
      const list = this.#pending.get(userId)
      if (list === undefined) this.#pending.set(userId, [target])
      else list.push(target)
    }
    if (target.values.length >= MAX_USERS) this.#seal(target)
    this.#enforceBounds()
  }

  /** Seals every open batch, oldest first: the input has ended or is idle. */
  flush(): void {
    for (const b of [...this.#open.values()]) this.#seal(b)
  }

  /**
   * Hands out a sealed batch whose earlier overlapping batches are all done, or undefined.
   * The caller must call {@link complete} when its request has finished, however it finished.
   */
  takeReady(): PackedBatch | undefined {
    for (let i = 0; i < this.#sealed.length; i++) {
      const b = this.#sealed[i] as Batch
      let ready = true
      for (const w of b.waitsFor) {
        if (w.state !== 'done') {
          ready = false
          break
        }
      }
      if (ready) {
        this.#sealed.splice(i, 1)
        b.state = 'sending'
        return b
      }
    }
    return undefined
  }

  /** Everything not yet handed out, sealing open batches: for reporting rows that will not be sent. */
  drain(): PackedBatch[] {
    this.flush()
    const rest = this.#sealed.splice(0)
    for (const b of rest) this.complete(b)
    return rest
  }

  /** Marks a handed-out batch finished (sent, rejected or failed) so batches waiting for it may go. */
  complete(batch: PackedBatch): void {
    const b = batch as Batch
    b.state = 'done'
    for (const userId of b.userIds) {
      const list = this.#pending.get(userId)
      if (list === undefined) continue
      const i = list.indexOf(b)
      if (i !== -1) list.splice(i, 1)
      if (list.length === 0) this.#pending.delete(userId)
    }
  }

  #create(key: string, names: readonly string[]): Batch {
    const b: Batch = {
      seq: this.#seq++,
      key,
      fieldNames: names,
      nameSet: new Set(names.slice(1)),
      values: [],
      rowIndexes: [],
      userIds: new Set(),
      waitsFor: new Set(),
      state: 'open',
    }
    this.#open.set(key, b)
    return b
  }

  #seal(b: Batch): void {
    if (b.state !== 'open') return
    // What it waits for must be on its way too, or nothing could ever release it.
    for (const w of b.waitsFor) this.#seal(w)
    b.state = 'sealed'
    if (this.#open.get(b.key) === b) this.#open.delete(b.key)
    this.#openRows -= b.values.length
    this.#sealed.push(b)
  }

  #enforceBounds(): void {
    // Map order is creation order, so the first open batch is the oldest.
    while (this.#openRows > this.#maxOpenRows || this.#open.size > this.#maxOpenBatches) {
      const oldest = this.#open.values().next().value
      if (oldest === undefined) break
      this.#seal(oldest)
    }
  }
}
