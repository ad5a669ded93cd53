import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Scope } from '../core/scopes.js'
import { generateApiKey } from '../storage/api-keys.js'
import { openStore } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { buildApp } from './app.js'
import { loadConfig, storeOptionsOf, type Config } from './config.js'
import { createMetrics } from './metrics.js'

export interface TestApp {
  readonly app: FastifyInstance
  readonly store: Store
  readonly config: Config
  /** Creates the project if new and a key for it; returns the secret. Default scopes: both. */
  key(project: string, scopes?: readonly Scope[]): Promise<string>
}

/** A fresh app over a fresh store (default in-memory SQLite), closed when the test ends. */
export async function buildTestApp(
  t: TestContext,
  env: Record<string, string> = {},
  now?: () => number,
  databaseUrl = 'sqlite::memory:',
): Promise<TestApp> {
  const config = loadConfig({ LOG_LEVEL: 'silent', ...env })
  const store = await openStore(databaseUrl, storeOptionsOf(config))
  const app = buildApp({ store, config, metrics: createMetrics({ defaultMetrics: false }), ...(now ? { now } : {}) })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  return { app, store, config, key: (project, scopes) => createTestKey(store, project, scopes) }
}

export async function createTestKey(
  store: Store,
  project: string,
  scopes: readonly Scope[] = ['profiles:write', 'profiles:read'],
): Promise<string> {
  const { id: projectId } = await store.ensureProject(project)
  const { secret, hash } = generateApiKey()
  await store.createKey({ projectId, label: 'test', scopes, hash })
  return secret
}
