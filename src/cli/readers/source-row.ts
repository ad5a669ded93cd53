/** One data row of an input file, as the readers hand it to the upload command. */
export interface SourceRow {
  /** 1-based line where the row starts in the file (the CSV header is line 1). */
  readonly line: number
  /** The row as a `{ user_id, ...attributes }` record (null prototype), or undefined when unreadable. */
  readonly record: Record<string, unknown> | undefined
  /** Why the row cannot be used, when `record` is undefined. */
  readonly error?: string
  /** What to write back in a rejects file: the CSV cells, or the JSONL line. */
  readonly raw: readonly string[] | string
  /** Byte offset of the end of this row in the file (with its line break), for progress. */
  readonly bytes: number
}

/** What to do with an empty value: send `""` (clears the attribute, spec §3) or leave the attribute out. */
export type BlankPolicy = 'clear' | 'skip'
