import { isUtf8 } from 'node:buffer'
import { InvalidUtf8Error } from './input-error.js'

/**
 * Passes the bytes of `input` on, cut at character boundaries, once they are known to be UTF-8.
 * At the first byte that is not, it yields the valid bytes before it and throws an
 * {@link InvalidUtf8Error} with that byte's offset and line. Nothing is decoded here: the check is one
 * native pass (`isUtf8`) per chunk, and at most 3 bytes (a character cut by the chunk edge) are held
 * back, so memory stays flat. Lines end at CRLF, LF or a lone CR, as in the CSV reader.
 */
export async function* utf8Chunks(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let carry: Buffer | undefined
  let offset = 0
  let breaks = 0
  let endedWithCr = false
  for await (const piece of input) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece
    const buf = carry === undefined ? chunk : Buffer.concat([carry, chunk])
    const cut = completeLength(buf)
    const whole = cut === buf.length ? buf : buf.subarray(0, cut)
    if (!isUtf8(whole)) {
      const bad = firstInvalidByte(whole)
      if (bad > 0) yield whole.subarray(0, bad)
      const before = countLineBreaks(whole.subarray(0, bad), endedWithCr)
      throw new InvalidUtf8Error(1 + breaks + before.breaks, offset + bad)
    }
    if (whole.length > 0) {
      const counted = countLineBreaks(whole, endedWithCr)
      breaks += counted.breaks
      endedWithCr = counted.endsWithCr
      offset += whole.length
      yield whole
    }
    carry = cut === buf.length ? undefined : Buffer.from(buf.subarray(cut))
  }
  // The file ends inside a character.
  if (carry !== undefined) throw new InvalidUtf8Error(1 + breaks, offset)
}

/** Length of `buf` without a multi-byte character cut off at its end (which the next chunk completes). */
function completeLength(buf: Buffer): number {
  let i = buf.length - 1
  let continuation = 0
  while (i >= 0 && continuation < 3 && ((buf[i] as number) & 0xc0) === 0x80) {
    i--
    continuation++
  }
  if (i < 0) return buf.length
  const lead = buf[i] as number
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return i + size > buf.length ? i : buf.length
}

/**
 * Offset of the first byte of the first invalid sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or `buf.length`. Only called once `isUtf8` said no.
 */
export function firstInvalidByte(buf: Uint8Array): number {
  let i = 0
  while (i < buf.length) {
    const b = buf[i] as number
    if (b < 0x80) {
      i++
      continue
    }
    let size: number
    let lo = 0x80
    let hi = 0xbf
    if (b >= 0xc2 && b <= 0xdf) size = 2
    else if (b >= 0xe0 && b <= 0xef) {
      size = 3
      if (b === 0xe0) lo = 0xa0
      if (b === 0xed) hi = 0x9f
    } else if (b >= 0xf0 && b <= 0xf4) {
      size = 4
      if (b === 0xf0) lo = 0x90
      if (b === 0xf4) hi = 0x8f
    } else return i
    if (i + size > buf.length) return i
    const second = buf[i + 1] as number
    if (second < lo || second > hi) return i
    for (let k = 2; k < size; k++) {
      if (((buf[i + k] as number) & 0xc0) !== 0x80) return i
    }
    i += size
  }
  return buf.length
}

/**
 * Line breaks in `buf` (CRLF, LF, lone CR), given whether the bytes before it ended with a CR (then
 * an LF first is the second half of a CRLF already counted). Native `indexOf` keeps it cheap.
 */
export function countLineBreaks(buf: Buffer, afterCr: boolean): { breaks: number; endsWithCr: boolean } {
  let breaks = 0
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) breaks++
  for (let i = buf.indexOf(13); i !== -1; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] !== 10) breaks++
  }
  // A CR that ended the previous piece was counted as a break on its own; an LF here makes it a CRLF.
  if (afterCr && buf[0] === 10) breaks--
  return { breaks, endsWithCr: buf.length > 0 ? buf[buf.length - 1] === 13 : afterCr }
}
