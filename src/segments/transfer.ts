/**
 * Moving an index between threads without copying it: typed arrays go in a `postMessage` transfer
 * list, which hands their memory over (the sender's views become empty) instead of cloning it.
 */

type View = Uint8Array | Uint16Array | Int32Array | Uint32Array | Float64Array

/** The same kind of view over a plain (transferable) ArrayBuffer. */
type Owned<T extends View> = T extends Uint8Array
  ? Uint8Array<ArrayBuffer>
  : T extends Uint16Array
    ? Uint16Array<ArrayBuffer>
    : T extends Int32Array
      ? Int32Array<ArrayBuffer>
      : T extends Uint32Array
        ? Uint32Array<ArrayBuffer>
        : Float64Array<ArrayBuffer>

/** The buffers to hand over with a snapshot; each at most once (a duplicate makes `postMessage` throw). */
export class TransferList {
  readonly buffers: ArrayBuffer[] = []
  private readonly seen = new Set<ArrayBuffer>()

  /**
   * Adds `view`'s memory to the list and returns a view to put in the snapshot: `view` itself when it
   * owns its whole buffer, else a copy. A view into a shared pool (small `Buffer`s are slices of one
   * 8 KiB pool) or a part of a larger buffer must not hand over memory that is not its own.
   */
  add<T extends View>(view: T): Owned<T> {
    let own: View = view
    if (
      view.byteOffset !== 0 ||
      view.byteLength !== view.buffer.byteLength ||
      view.buffer instanceof SharedArrayBuffer ||
      this.seen.has(view.buffer)
    ) {
      // A copy (a Buffer's own slice() would be a view, so bytes are copied through a Uint8Array).
      own = view instanceof Uint8Array ? new Uint8Array(view) : view.slice()
    }
    const buffer = own.buffer as ArrayBuffer
    this.seen.add(buffer)
    this.buffers.push(buffer)
    return own as Owned<T>
  }
}

/** A Buffer over the memory of a transferred view (structured clone turns a Buffer into a plain Uint8Array). */
export function asBuffer(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
}
