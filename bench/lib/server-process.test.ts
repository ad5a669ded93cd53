import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parsePeakRss, readPeakRssBytes } from './server-process.js'

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
