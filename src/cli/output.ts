/**
 * Where CLI commands write. Commands take an `Output` instead of touching `process.stdout`, so
 * tests can capture exactly what a user would see. stdout carries results a script may parse
 * (a key's secret, JSON); stderr carries errors and progress.
 */
export interface Output {
  /** One line to stdout. */
  out(line: string): void
  /** One line to stderr. */
  err(line: string): void
}

/** The real terminal. */
export function createConsoleOutput(): Output {
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
  }
}

/** An `Output` that records lines, for tests. */
export interface MemoryOutput extends Output {
  readonly stdout: string[]
  readonly stderr: string[]
}

export function createMemoryOutput(): MemoryOutput {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (line) => void stdout.push(line), err: (line) => void stderr.push(line) }
}

/**
 * Lays rows out as left-aligned columns separated by two spaces; the first row is the header.
 * Widths count UTF-16 units, which is close enough for labels and ids.
 */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length)
    })
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  )
}
