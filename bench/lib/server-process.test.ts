import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseCpuSeconds, parsePeakRss, readCpuSeconds, readPeakRssBytes } from './server-process.js'

test('parsePeakRss reads VmHWM in kB', () => {
  assert.equal(parsePeakRss('Name:\tnode\nVmPeak:\t  900 kB\nVmHWM:\t   123456 kB\nVmRSS:\t 1 kB\n'), 123456 * 1024)
  assert.equal(parsePeakRss('Name:\tnode\n'), null)
})

test(
  'readPeakRssBytes of this process is plausible on Linux, null for no process',
  { skip: process.platform !== 'linux' ? 'needs /proc' : false },
  () => {
    const own = readPeakRssBytes(process.pid)
    assert.ok(own !== null && own >= process.memoryUsage().rss * 0.5)
    assert.equal(readPeakRssBytes(2 ** 22 + 12345), null)
  },
)

test('parseCpuSeconds sums utime and stime (fields 14, 15) even when the name has spaces', () => {
  const stat = '1234 (node (my) app) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 11 0 100 200 300'
  assert.equal(parseCpuSeconds(stat), 3)
  assert.equal(parseCpuSeconds('garbage'), null)
})

test(
  'readCpuSeconds of this process grows with work',
  { skip: process.platform !== 'linux' ? 'needs /proc' : false },
  () => {
    const before = readCpuSeconds(process.pid)
    const until = Date.now() + 150
    while (Date.now() < until) Math.sqrt(Math.random())
    const after = readCpuSeconds(process.pid)
    assert.ok(before !== null && after !== null && after > before, `${before} → ${after}`)
  },
)
