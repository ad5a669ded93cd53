/** Where progress goes: stderr, so stdout stays clean for the summary a script may parse. */
export interface ProgressStream {
  readonly isTTY?: boolean
  readonly columns?: number
  write(text: string): unknown
}

export interface ProgressSnapshot {
  /** Rows finished: stored, rejected or failed (plus rows skipped by --resume). */
  readonly done: number
  /** Rows read from the file so far. */
  readonly read: number
  /** Bytes of the file read so far, and its size; the basis of the percentage and the ETA. */
  readonly bytes: number
  readonly totalBytes: number
  readonly rejected: number
  readonly failed: number
  readonly retries: number
}

const WINDOW_MS = 10_000

/**
 * Draws a live bar on a terminal (redrawn in place) or prints a plain line now and then otherwise
 * (logs and CI do not understand carriage returns). Rates are measured over the last 10 seconds.
 */
export class ProgressReporter {
  readonly #stream: ProgressStream
  readonly #tty: boolean
  readonly #samples: { at: number; done: number; bytes: number }[] = []
  #drawn = false

  constructor(stream: ProgressStream) {
    this.#stream = stream
    this.#tty = stream.isTTY === true
  }

  get tty(): boolean {
    return this.#tty
  }

  /** Records a sample and draws it. */
  report(s: ProgressSnapshot, now: number = Date.now()): void {
    this.#samples.push({ at: now, done: s.done, bytes: s.bytes })
    while (this.#samples.length > 2 && (this.#samples[0]?.at ?? now) < now - WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0] ?? { at: now, done: s.done, bytes: s.bytes }
    const seconds = (now - first.at) / 1000
    const rowsPerSecond = seconds > 0 ? (s.done - first.done) / seconds : 0
    const bytesPerSecond = seconds > 0 ? (s.bytes - first.bytes) / seconds : 0
    const text = formatProgress(s, rowsPerSecond, bytesPerSecond, this.#tty)
    if (this.#tty) {
      const width = Math.max(20, (this.#stream.columns ?? 100) - 1)
      this.#stream.write(`\r${text.slice(0, width)}\x1b[K`)
      this.#drawn = true
    } else {
      this.#stream.write(`${text}\n`)
    }
  }

  /** Ends the live line so what follows starts on a fresh one. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\n')
    this.#drawn = false
  }
}

export function formatProgress(
  s: ProgressSnapshot,
  rowsPerSecond: number,
  bytesPerSecond: number,
  bar: boolean,
): string {
  const fraction = s.totalBytes > 0 ? Math.min(1, s.bytes / s.totalBytes) : 1
  // The total is unknown until the end of the file; estimate it from the bytes read so far.
  const estimated = s.bytes > 0 && fraction < 1 ? `~${formatCount(Math.round(s.read / fraction))}` : formatCount(s.read)
  const eta =
    fraction >= 1
      ? 'ETA 0s'
      : bytesPerSecond > 0
        ? `ETA ${formatDuration((s.totalBytes - s.bytes) / bytesPerSecond)}`
        : 'ETA ?'
  const parts = [
    `${formatCount(s.done)}/${estimated} rows`,
    `${formatCount(Math.round(rowsPerSecond))} rows/s`,
    eta,
    `retries ${formatCount(s.retries)}`,
    `rejects ${formatCount(s.rejected)}`,
  ]
  if (s.failed > 0) parts.push(`failed ${formatCount(s.failed)}`)
  const percent = `${(fraction * 100).toFixed(fraction < 1 ? 1 : 0)}%`
  if (!bar) return `progress: ${percent} ${parts.join(', ')}`
  const cells = 24
  const full = Math.round(fraction * cells)
  return `[${'█'.repeat(full)}${'░'.repeat(cells - full)}] ${percent} ${parts.join(' · ')}`
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US')
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?'
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}
