import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { summarizeLatencies } from './latency.js'
import { evaluateRun, formatRun, type RunInput } from './report.js'

function input(over: Partial<RunInput> & { latencies?: number[]; users?: number; errors?: number }): RunInput {
  const latencies = over.latencies ?? [10, 11, 12, 13, 20]
  return {
    backend: 'sqlite',
    preload: 0,
    connections: 32,
    segments: true,
    preloadSeconds: 0,
    http: {
      requests: 5,
      users: over.users ?? 400_000,
      errors: over.errors ?? 0,
      errorSamples: over.errors ? ['HTTP 500: {"msg":"x"}'] : [],
      elapsedMs: 20_000,
      latency: summarizeLatencies(latencies),
      serverPeakRssBytes: 150 * 1024 * 1024,
      serverCpuSeconds: 19,
      loadCpuSeconds: 2,
    },
    direct: { requests: 3000, users: 300_000, elapsedMs: 20_000, cpuSeconds: 10 },
    ...over,
  }
}

describe('evaluateRun', () => {
  test('rates, ratio and all checks passing', () => {
    const r = evaluateRun(input({}))
    assert.equal(r.httpUsersPerSecond, 20_000)
    assert.equal(r.directUsersPerSecond, 15_000)
    assert.equal(r.ratio, 20_000 / 15_000)
    assert.equal(r.target, 15_100)
    assert.deepEqual(
      r.checks.map((c) => c.pass),
      [true, true, true],
    )
  })
  test('below the raw figure fails; targets depend on backend and size', () => {
    assert.equal(evaluateRun(input({ users: 300_000 })).checks[0]?.pass, false)
    const pg = evaluateRun(input({ backend: 'postgres', preload: 1_000_000, users: 170_000 }))
    assert.equal(pg.target, 8_000)
    assert.equal(pg.checks[0]?.pass, true)
    assert.equal(evaluateRun(input({ backend: 'postgres', preload: 1_000_000, users: 160_000 })).checks[0]?.pass, false)
    assert.equal(evaluateRun(input({ preload: 1_000_000, users: 50_001 })).checks[0]?.pass, true)
  })
  test('p99 above 3× p50 fails; exactly 3× passes', () => {
    const uneven = Array.from({ length: 100 }, (_, i) => (i < 98 ? 10 : 31))
    assert.equal(evaluateRun(input({ latencies: uneven })).checks[1]?.pass, false)
    const edge = Array.from({ length: 100 }, (_, i) => (i < 98 ? 10 : 30))
    assert.equal(evaluateRun(input({ latencies: edge })).checks[1]?.pass, true)
  })
  test('any error fails; no successful request fails', () => {
    assert.equal(evaluateRun(input({ errors: 1 })).checks[2]?.pass, false)
    const none = evaluateRun(input({ latencies: [], users: 0 }))
    assert.equal(none.checks[1]?.pass, false)
  })
})

describe('formatRun', () => {
  test('prints the figures, the target lines with PASS/FAIL and error samples', () => {
    const text = formatRun(evaluateRun(input({ preload: 1_000_000, users: 60_000, errors: 2 }))).join('\n')
    assert.match(text, /preload 1,000,000 users/)
    assert.match(text, /HTTP {4}3,000 users\/s/)
    assert.match(text, /p50 12\.0 ms {2}p99 20\.0 ms/)
    assert.match(text, /server peak RSS 150 MB/)
    assert.match(text, /direct {2}15,000 users\/s/)
    assert.match(text, /ratio {3}HTTP\/direct 0\.20/)
    assert.match(
      text,
      /CPU {5}server 19\.0 s \(95 % of a core, 317 µs\/user\), load generator 2\.0 s \(10 % of a core\), direct 10\.0 s \(50 % of a core, 33 µs\/user\)/,
    )
    assert.match(text, /aim {5}2× raw = 5,000 users\/s: not reached/)
    assert.match(text, /PASS {4}HTTP users\/s > raw 2,500/)
    assert.match(text, /FAIL {4}no errors/)
    assert.match(text, /error {3}HTTP 500/)
  })
})
