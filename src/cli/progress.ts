/** Where progress goes: stderr, so stdout stays clean for the summary a script may parse. */
export interface ProgressStream {
  readonly isTTY?: boolean
  readonly columns?: number
  write(text: string): unknown
}

export interface ProgressSnapshot {
  /** Rows settled: stored, rejected or failed (plus rows skipped by --resume). The percentage is of these. */
  readonly done: number
  /** Rows read from the file so far. */
  readonly read: number
  /** Where the last row read ends in the file, and the file's size: they estimate the total rows until the end. */
  readonly bytes: number
  readonly totalBytes: number
  /** The whole file has been read, so `read` is the total. */
  readonly inputDone: boolean
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
  readonly #samples: { at: number; done: number }[] = []
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
    this.#samples.push({ at: now, done: s.done })
    while (this.#samples.length > 2 && (this.#samples[0]?.at ?? now) < now - WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0] ?? { at: now, done: s.done }
    const seconds = (now - first.at) / 1000
    const rowsPerSecond = seconds > 0 ? (s.done - first.done) / seconds : 0
    const text = formatProgress(s, rowsPerSecond, this.#tty)
    if (this.#tty) {
      // One character short of the width, so the line never wraps (which would break the redraw in place).
      // Some terminals (a pty without a size, some CI runners) report 0 columns or none: assume 80.
      const columns = this.#stream.columns
      const width = (columns !== undefined && columns > 0 ? columns : 80) - 1
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

/**
 * The percentage and the ETA are of rows settled against the total rows. That total is known once the
 * file is read; until then it is estimated from where the last row read ends in the file.
 */
export function formatProgress(s: ProgressSnapshot, rowsPerSecond: number, bar: boolean): string {
  const total = s.inputDone
    ? s.read
    : s.bytes > 0 && s.totalBytes > 0
      ? Math.max(s.read, Math.round((s.read * s.totalBytes) / s.bytes))
      : undefined
  const fraction = total === undefined ? 0 : total === 0 ? (s.inputDone ? 1 : 0) : Math.min(1, s.done / total)
  const remaining = total === undefined ? undefined : total - s.done
  const eta =
    s.inputDone && remaining !== undefined && remaining <= 0
      ? 'ETA 0s'
      : remaining !== undefined && remaining > 0 && rowsPerSecond > 0
        ? `ETA ${formatDuration(remaining / rowsPerSecond)}`
        : 'ETA ?'
  const rows =
    total === undefined
      ? `${formatCount(s.done)}/? rows`
      : s.inputDone && total === 0
        ? '0 rows'
        : `${formatCount(s.done)}/${s.inputDone ? '' : '~'}${formatCount(total)} rows`
  const parts = [
    rows,
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
