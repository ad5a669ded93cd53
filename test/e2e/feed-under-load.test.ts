import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { runFeedProbe } from '../../bench/lib/feed-probe.js'
import { startServer, type ServerProcess } from '../../bench/lib/server-process.js'
import { createTestKey } from '../../src/server/test-app.js'
import { compareCodePoints } from '../../src/core/text.js'
import { openStore } from '../../src/storage/open-store.js'
import type { PostgresStore } from '../../src/storage/postgres/postgres-store.js'
import { createTestDatabase, type TestBackend } from '../../src/storage/postgres/test-database.js'
import { SERVER } from './processes.js'

// The scenario: 8 clients upload at full speed through two server processes while a prober
// uploads a marker through one and, once it is acknowledged, counts markers through the other.
// Every count must include every acknowledged marker, and every query must answer (the old Citus
// layout answered most probes with stale counts). Mechanism only: speed is in `npm run bench:scale`.

// The third case spreads the project over both workers first (`projects spread`): no change feed,
// so every count is the database path's, which must be exact as well; an export reads every worker.
for (const [backend, spread] of [
  ['postgres', false],
  ['citus', false],
  ['citus', true],
] as [TestBackend, boolean][]) {
  const label = spread ? `${backend}, the project spread over both workers` : backend
  describe(`read-your-writes across two processes under full upload load on ${label}`, () => {
    const servers: ServerProcess[] = []
    let cleanup: () => Promise<void> = async () => undefined
    const logDir = mkdtempSync(join(tmpdir(), 'traitbase-feed-load-'))
    after(async () => {
      for (const s of servers) await s.stop()
      await cleanup()
      rmSync(logDir, { recursive: true, force: true })
    })

    test('every probe counts every acknowledged upload, and answers', async (t) => {
      assert.ok(existsSync(SERVER), `${SERVER} is missing: run "npm run build" first (npm test does)`)
      const db = await createTestDatabase(backend)
      if ('skip' in db) return t.skip(db.skip)
      cleanup = db.drop
      const store = await openStore(db.url)
      const key = await createTestKey(store, 'feed-load')
      if (spread) {
        const project = (await store.findProject('feed-load'))?.id as number
        await (store as PostgresStore).spreadProject(project, 8)
      }
      await store.close()
      for (const name of ['a', 'b']) {
        const env = { DATABASE_URL: db.url, LOG_LEVEL: 'warn' }
        servers.push(await startServer({ entry: SERVER, env, logFile: join(logDir, `${name}.log`) }))
      }
      const outcome = await runFeedProbe({
        servers: servers.map((s) => s.baseUrl),
        apiKey: key,
        connections: 8,
        seconds: 6,
        minProbes: 8,
        preload: 0,
        seed: 7,
        probeTimeoutMs: 60_000,
      })
      assert.deepEqual(outcome.failures, [])
      assert.ok(outcome.probes >= 8)
      assert.equal(outcome.queryMs.length, outcome.probes, 'every probe query answered')
      for (const load of outcome.load) {
        assert.equal(load.errors, 0, load.errorSamples.join('; '))
        assert.ok(load.requests > 0, 'the background load ran')
      }
      if (spread) {
        // Both processes answer from the database (no index for a spread project), and an export
        // streams every user, in order, from both workers.
        const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
        const counts: number[] = []
        for (const server of servers) {
          const res = await fetch(`${server.baseUrl}/v1/user/segments/query`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ where: { field: 'plan', op: 'exists' }, limit: 1 }),
          })
          assert.equal(res.status, 200, await res.clone().text())
          assert.equal(res.headers.get('x-segment-source'), 'database')
          counts.push(((await res.json()) as { data: { count: number } }).data.count)
        }
        const check = await openStore(db.url)
        const total = await check.countProfiles((await check.findProject('feed-load'))?.id as number)
        await check.close()
        assert.deepEqual(counts, [counts[0], counts[0]])
        const exported = await fetch(`${servers[0]?.baseUrl}/v1/user/segments/export`, {
          method: 'POST',
          headers: { ...headers, accept: 'application/x-ndjson' },
          body: JSON.stringify({ where: { field: 'plan', op: 'exists' } }),
        })
        assert.equal(exported.status, 200, await exported.clone().text())
        const ids = (await exported.text())
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => (JSON.parse(line) as { user_id: string }).user_id)
        assert.equal(ids.length, counts[0])
        assert.deepEqual([...ids].sort(compareCodePoints), ids, 'in code point order')
        assert.ok(total >= ids.length)
      }
    })
  })
}
