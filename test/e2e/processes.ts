import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import { createTestDatabase, type TestDatabase } from '../../src/storage/postgres/test-database.js'

/** The repository root, the CLI entry and the built server that the e2e tests spawn. */
export const ROOT = resolve(import.meta.dirname, '../..')
export const BIN = join(ROOT, 'bin/traitbase.js')
export const SERVER = join(ROOT, 'dist/server/main.js')

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `traitbase ARGS` as a user would (the built CLI, from the repository root) and collects its output. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

/** A fresh PostgreSQL database for one e2e suite: `setup` returns a reason to skip when PostgreSQL is not usable. */
export function postgresTestDatabase(): {
  setup(): Promise<string | undefined>
  url(): string
  teardown(): Promise<void>
} {
  let db: TestDatabase | undefined
  return {
    setup: async () => {
      const created = await createTestDatabase()
      if ('skip' in created) return created.skip
      db = created
      return undefined
    },
    url: () => db?.url ?? '',
    teardown: async () => db?.drop(),
  }
}
