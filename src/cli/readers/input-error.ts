/**
 * A problem that makes the rest of an input file unreadable: a bad header, a quote never closed,
 * bytes that are not UTF-8. Rows before it were read and handed on; nothing after it can be.
 */
export class InputFileError extends Error {
  /** 1-based line the problem is on (for a record: the line where it starts), when known. */
  readonly line: number | undefined
  /** What is wrong, without the file name or line. */
  readonly detail: string

  constructor(detail: string, line?: number) {
    super(oneLine(line === undefined ? detail : `line ${line}: ${detail}`))
    this.name = 'InputFileError'
    this.line = line
    this.detail = detail
  }

  /** The one line a user sees, e.g. `users.csv line 3: …`. */
  describe(file: string): string {
    return oneLine(this.line === undefined ? `${file}: ${this.detail}` : `${file} line ${this.line}: ${this.detail}`)
  }
}

/** The file is not UTF-8 (Latin-1, UTF-16, binary): nothing can be read past `offset`. */
export class InvalidUtf8Error extends InputFileError {
  /** 0-based byte offset of the first byte that is not part of a valid UTF-8 character. */
  readonly offset: number
  /** Line of that byte. Not `line`: a record may have started on an earlier one. */
  readonly nearLine: number

  constructor(line: number, offset: number) {
    super(`not valid UTF-8 near line ${line} (byte offset ${offset})`)
    this.name = 'InvalidUtf8Error'
    this.offset = offset
    this.nearLine = line
  }

  override describe(file: string): string {
    return oneLine(
      `${file} is not valid UTF-8 near line ${this.nearLine} (byte offset ${this.offset}): ` +
        'convert it to UTF-8, e.g. iconv -f latin1 -t utf-8',
    )
  }
}

/** Messages are printed as one line: raw line breaks (from a cell or a field name) are shown escaped. */
export function oneLine(text: string): string {
  return text.replaceAll('\r', '\\r').replaceAll('\n', '\\n')
}
