import { performance } from 'node:perf_hooks'
import { parseUploadBody } from '../../src/core/upload.js'
import type { Store } from '../../src/storage/store.js'
import { generateLoadBody } from './profile-generator.js'
import type { DirectMeasurement } from './report.js'

export interface DirectRunOptions {
  readonly seconds: number
  /** Calls in flight at once; the HTTP run's connection count, so the two differ only by HTTP. */
  readonly concurrency: number
  readonly preload: number
  readonly seed: number
}

/**
 * Writes the load's request sequence straight into the store, without HTTP: each batch is built
 * and validated exactly as the server does (`parseUploadBody`), then `store.applyUpload`.
 */
export async function runDirect(
  store: Store,
  projectId: number,
  options: DirectRunOptions,
): Promise<DirectMeasurement> {
  let next = 0
  let requests = 0
  let users = 0
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  const deadline = start + options.seconds * 1000
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const parsed = parseUploadBody(generateLoadBody(next++, options.preload, options.seed))
      if (!parsed.ok) throw new Error(`generated batch is invalid: ${parsed.error[0]?.message ?? ''}`)
      await store.applyUpload(projectId, parsed.value)
      requests++
      users += parsed.value.rows
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, loop))
  const cpu = process.cpuUsage(cpuStart)
  return { requests, users, elapsedMs: performance.now() - start, cpuSeconds: (cpu.user + cpu.system) / 1e6 }
}
