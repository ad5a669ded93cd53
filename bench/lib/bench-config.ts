import { err, ok, type Result } from '../../src/core/result.js'

/** The preload sizes the issue asks for. */
export const PRELOAD_SIZES = [0, 1_000_000] as const

export interface BenchConfig {
  readonly backend: 'sqlite' | 'postgres'
  /** PostgreSQL server to create fresh databases on; undefined for SQLite (temp files). */
  readonly postgresUrl: string | undefined
  /** Length of each timed run (HTTP and direct), seconds. Default 20. */
  readonly seconds: number
  /** Users preloaded before each measured run; one run per entry. Default both sizes. */
  readonly preloads: readonly number[]
  /** Keep-alive connections of the load generator. Default 32. */
  readonly connections: number
  /** False with SEGMENTS=off: store opened without its change log, for issue 3's comparison. */
  readonly segments: boolean
  /** Seed of the generated data. Default 1. */
  readonly seed: number
}

/** Reads BENCH_SECONDS, BENCH_PRELOAD (0, 1000000 or both), BENCH_CONNECTIONS, BENCH_SEED, DATABASE_URL, SEGMENTS. */
export function parseBenchConfig(env: Readonly<Record<string, string | undefined>>): Result<BenchConfig, string> {
  const seconds = parseNumber('BENCH_SECONDS', env.BENCH_SECONDS, 20, 1, 600)
  if (!seconds.ok) return seconds
  const connections = parseNumber('BENCH_CONNECTIONS', env.BENCH_CONNECTIONS, 32, 1, 256)
  if (!connections.ok) return connections
  const seed = parseNumber('BENCH_SEED', env.BENCH_SEED, 1, 0, 2 ** 32 - 1)
  if (!seed.ok) return seed

  const preloadText = (env.BENCH_PRELOAD ?? 'both').trim()
  let preloads: number[]
  if (preloadText === 'both') preloads = [...PRELOAD_SIZES]
  else if ((PRELOAD_SIZES as readonly number[]).includes(Number(preloadText)) && preloadText !== '') {
    preloads = [Number(preloadText)]
  } else return err(`BENCH_PRELOAD must be 0, 1000000 or both, got "${preloadText}"`)

  const segmentsText = (env.SEGMENTS ?? 'on').trim()
  if (segmentsText !== 'on' && segmentsText !== 'off') return err(`SEGMENTS must be on or off, got "${segmentsText}"`)

  const url = env.DATABASE_URL?.trim() ?? ''
  let postgresUrl: string | undefined
  if (/^postgres(ql)?:\/\//.test(url)) postgresUrl = url
  else if (url !== '' && !url.startsWith('sqlite:')) {
    return err('DATABASE_URL must be a postgres:// or postgresql:// URL (or unset for SQLite)')
  }
  return ok({
    backend: postgresUrl === undefined ? 'sqlite' : 'postgres',
    postgresUrl,
    seconds: seconds.value,
    preloads,
    connections: connections.value,
    segments: segmentsText === 'on',
    seed: seed.value,
  })
}

function parseNumber(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): Result<number, string> {
  if (raw === undefined || raw.trim() === '') return ok(fallback)
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max)
    return err(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
  return ok(n)
}
