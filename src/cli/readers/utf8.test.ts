import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidUtf8Error } from './input-error.js'
import { countLineBreaks, firstInvalidByte, utf8Chunks } from './utf8.js'

async function pass(bytes: Buffer, size: number): Promise<{ out: Buffer; error: unknown }> {
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }
  const out: Buffer[] = []
  try {
    for await (const chunk of utf8Chunks(pieces())) out.push(chunk)
  } catch (error) {
    return { out: Buffer.concat(out), error }
  }
  return { out: Buffer.concat(out), error: undefined }
}

describe('utf8Chunks', () => {
  test('valid text passes unchanged, whichever byte the chunks are cut at', async () => {
    const text = Buffer.from('a,é\r\n東京,😀\rx\n')
    for (let size = 1; size <= text.length; size++) {
      const { out, error } = await pass(text, size)
      assert.equal(error, undefined)
      assert.deepEqual(out, text)
    }
  })

  test('the first invalid byte: its offset and line (CRLF, LF, CR), and every valid byte before it', async () => {
    const cases: [Buffer, number, number][] = [
      [Buffer.from([0x61, 0x0d, 0x0a, 0x62, 0xe9, 0x0a]), 4, 2], // Latin-1 é
      [Buffer.from([0x61, 0x0d, 0x62, 0x0a, 0x63, 0xc0, 0xaf]), 5, 3], // overlong '/'
      [Buffer.from([0x0a, 0xed, 0xa0, 0x80]), 1, 2], // a UTF-16 surrogate
      [Buffer.from([0xff, 0xfe, 0x61, 0x00]), 0, 1], // a UTF-16 BOM
      [Buffer.from([0x61, 0x0a, 0xe6, 0x9d]), 2, 2], // the file ends inside a character
    ]
    for (const [bytes, offset, line] of cases) {
      for (const size of [1, 2, 3, 64]) {
        const { out, error } = await pass(bytes, size)
        assert.ok(error instanceof InvalidUtf8Error, `${bytes.toString('hex')} in chunks of ${size}`)
        assert.equal(error.offset, offset, bytes.toString('hex'))
        assert.equal(error.nearLine, line, bytes.toString('hex'))
        assert.deepEqual(out, bytes.subarray(0, offset))
      }
    }
  })

  test('firstInvalidByte agrees with the WHATWG decoder on every 2-byte sequence after a lead byte', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true })
    for (let lead = 0x80; lead <= 0xff; lead++) {
      for (let next = 0; next <= 0xff; next++) {
        const bytes = Uint8Array.from([lead, next, 0x80, 0x80, 0x41])
        let valid = true
        try {
          fatal.decode(bytes)
        } catch {
          valid = false
        }
        assert.equal(firstInvalidByte(bytes) === bytes.length, valid, `${lead.toString(16)} ${next.toString(16)}`)
      }
    }
  })

  test('countLineBreaks: a CRLF cut in two counts once', () => {
    assert.deepEqual(countLineBreaks(Buffer.from('a\r\nb\nc\rd\r'), false), { breaks: 4, endsWithCr: true })
    assert.deepEqual(countLineBreaks(Buffer.from('\nx'), true), { breaks: 0, endsWithCr: false })
    assert.deepEqual(countLineBreaks(Buffer.from('x\n'), true), { breaks: 1, endsWithCr: false })
  })
})
