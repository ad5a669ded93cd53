import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { formatDuration, formatProgress, ProgressReporter, type ProgressSnapshot } from './progress.js'

const snap = (over: Partial<ProgressSnapshot> = {}): ProgressSnapshot => ({
  done: 45_000,
  read: 50_000,
  bytes: 500,
  totalBytes: 1000,
  inputDone: false,
  rejected: 12,
  failed: 0,
  retries: 3,
  ...over,
})

describe('progress', () => {
  test('plain line: percent of rows settled against the estimated total, rate, ETA, retries, rejects', () => {
    assert.equal(
      formatProgress(snap(), 3210.4, false),
      'progress: 45.0% 45,000/~100,000 rows, 3,210 rows/s, ETA 17s, retries 3, rejects 12',
    )
  })

  test('the file read long ago is not "100%": rows still waiting for a slow server count as not done', () => {
    // Rate-limited: the reader reached the end of the file long before the rows were sent.
    assert.equal(
      formatProgress(snap({ done: 2000, read: 2700, bytes: 540, totalBytes: 1000 }), 20, false),
      'progress: 40.0% 2,000/~5,000 rows, 20 rows/s, ETA 2m30s, retries 3, rejects 12',
    )
    assert.equal(
      formatProgress(snap({ done: 2000, read: 5000, bytes: 1000, inputDone: true }), 20, false),
      'progress: 40.0% 2,000/5,000 rows, 20 rows/s, ETA 2m30s, retries 3, rejects 12',
    )
    assert.match(
      formatProgress(snap({ done: 0, read: 0, bytes: 0 }), 0, false),
      /^progress: 0\.0% 0\/\? rows, .*ETA \?/,
    )
  })

  test('bar on a terminal; failures shown only when there are some; exact total at the end', () => {
    assert.equal(
      formatProgress(snap({ failed: 2 }), 10, true),
      '[███████████░░░░░░░░░░░░░] 45.0% 45,000/~100,000 rows · 10 rows/s · ETA 1h31m · retries 3 · rejects 12 · failed 2',
    )
    assert.match(
      formatProgress(snap({ bytes: 1000, done: 50_000, inputDone: true }), 0, false),
      /^progress: 100% 50,000\/50,000 rows, 0 rows\/s, ETA 0s/,
    )
  })

  test('a file with a header and no rows ends on a sane line', () => {
    assert.equal(
      formatProgress(snap({ done: 0, read: 0, bytes: 0, totalBytes: 13, inputDone: true, rejected: 0 }), 0, false),
      'progress: 100% 0 rows, 0 rows/s, ETA 0s, retries 3, rejects 0',
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
    tty.report(snap({ done: 47_000, bytes: 520 }), 2000)
    tty.finish()
    assert.ok(written.slice(0, 2).every((w) => w.startsWith('\r') && w.endsWith('\x1b[K') && !w.includes('\n')))
    assert.ok(written[1]!.length <= 80 + 4)
    assert.match(written[1]!, /1,000 rows\/s/, 'rate over the window')
    assert.equal(written[3], '\n')

    for (const columns of [0, undefined]) {
      const drawn: string[] = []
      const sizeless = new ProgressReporter({ isTTY: true, columns, write: (t: string) => drawn.push(t) })
      sizeless.report(snap(), 0)
      assert.equal(drawn[0], `\r${formatProgress(snap(), 0, true).slice(0, 79)}\x1b[K`, `columns ${columns}`)
    }

    const lines: string[] = []
    const plain = new ProgressReporter({ write: (t: string) => lines.push(t) })
    plain.report(snap(), 0)
    plain.finish()
    assert.deepEqual(lines.length, 1)
    assert.ok(lines[0]!.endsWith('\n') && !lines[0]!.includes('\r'))
  })
})
