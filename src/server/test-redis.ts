import { Redis } from 'ioredis'

/** Where Redis suites connect unless TEST_REDIS_URL says otherwise (the machine's and CI's local Redis). */
export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] || 'redis://127.0.0.1:6379'

/**
 * Undefined when Redis at TEST_REDIS_URL answers a PING, else the reason to skip; with
 * TRAITBASE_REQUIRE_REDIS=1 (CI) it throws instead, so a missing Redis fails the run.
 */
export async function redisSkipReason(): Promise<string | undefined> {
  const client = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 })
  client.on('error', () => undefined)
  try {
    await client.connect()
    await client.ping()
    return undefined
  } catch (error) {
    const reason = `Redis at ${TEST_REDIS_URL} is not usable: ${(error as Error).message}`
    if (process.env['TRAITBASE_REQUIRE_REDIS'] === '1') throw new Error(`${reason} (TRAITBASE_REQUIRE_REDIS=1)`)
    return reason
  } finally {
    client.disconnect()
  }
}
