import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { formatDuration, formatProgress, ProgressReporter, type ProgressSnapshot } from './progress.js'

const snap = (over: Partial<ProgressSnapshot> = {}): ProgressSnapshot => ({
  done: 45_000,
  read: 50_000,
  bytes: 500,
  totalBytes: 1000,
  rejected: 12,
  failed: 0,
  retries: 3,
  ...over,
})

describe('progress', () => {
  test('plain line: percent by bytes, estimated total, rate, ETA, retries, rejects', () => {
    assert.equal(
      formatProgress(snap(), 3210.4, 10, false),
      'progress: 50.0% 45,000/~100,000 rows, 3,210 rows/s, ETA 50s, retries 3, rejects 12',
    )
  })

  test('bar on a terminal; failures shown only when there are some; exact total at the end', () => {
    assert.equal(
      formatProgress(snap({ failed: 2 }), 10, 0, true),
      '[████████████░░░░░░░░░░░░] 50.0% 45,000/~100,000 rows · 10 rows/s · ETA ? · retries 3 · rejects 12 · failed 2',
    )
    assert.match(
      formatProgress(snap({ bytes: 1000, done: 50_000 }), 0, 0, false),
      /^progress: 100% 50,000\/50,000 rows/,
    )
  })

  test('durations', () => {
    assert.deepEqual([5, 65, 3600 + 120, Infinity].map(formatDuration), ['5s', '1m05s', '1h02m', '?'])
  })

  test('a terminal gets one line redrawn in place; anything else gets one line per report', () => {
    const written: string[] = []
    const tty = new ProgressReporter({ isTTY: true, columns: 80, write: (t: string) => written.push(t) })
    tty.report(snap(), 0)
    tty.report(snap({ done: 46_000, bytes: 510 }), 1000)
    tty.finish()
    assert.ok(written.slice(0, 2).every((w) => w.startsWith('\r') && w.endsWith('\x1b[K') && !w.includes('\n')))
    assert.ok(written[1]!.length <= 80 + 4)
    assert.match(written[1]!, /1,000 rows\/s/, 'rate over the window')
    assert.equal(written[2], '\n')

    const lines: string[] = []
    const plain = new ProgressReporter({ write: (t: string) => lines.push(t) })
    plain.report(snap(), 0)
    plain.finish()
    assert.deepEqual(lines.length, 1)
    assert.ok(lines[0]!.endsWith('\n') && !lines[0]!.includes('\r'))
  })
})
