import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { RouteOptions } from 'fastify'
import { createClient, type ProfileData, type SegmentPage } from '../../sdk/index.js'
import { openStore } from '../../storage/open-store.js'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { createMetrics } from '../metrics.js'
import { createTestKey } from '../test-app.js'

type Doc = {
  openapi: string
  paths: Record<
    string,
    Record<string, { responses?: Record<string, { content?: Record<string, { schema: Schema }> }> }>
  >
}
type Schema = { properties?: Record<string, Schema>; required?: string[]; type?: unknown }

async function documentAndRoutes(t: TestContext) {
  const store = await openStore('sqlite::memory:')
  const app = buildApp({
    store,
    config: loadConfig({ LOG_LEVEL: 'silent' }),
    metrics: createMetrics({ defaultMetrics: false }),
  })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  // Every route is declared inside plugins that load on ready(), so this hook sees them all.
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => void routes.push(route))
  await app.ready()
  const r = await app.inject({ method: 'GET', url: '/openapi.json' })
  assert.equal(r.statusCode, 200)
  return { doc: r.json() as Doc, routes, app, store }
}

test('every registered route is in the OpenAPI 3.1 document, with its methods', async (t) => {
  const { doc, routes } = await documentAndRoutes(t)
  assert.equal(doc.openapi, '3.1.0')
  let checked = 0
  for (const route of routes) {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD')
    // Not API routes: the explicit 405 answers (they serve every method a path lacks, TRACE always
    // among them), the document itself and the /docs viewer.
    // The console's pages and assets are not an API either.
    if (methods.includes('TRACE') || route.url === '/openapi.json' || /^\/(docs|console)\b/.test(route.url)) continue
    if (methods.length === 0) continue
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}')
    for (const method of methods) {
      assert.ok(doc.paths[path]?.[method.toLowerCase()] !== undefined, `${method} ${path} is missing from the document`)
      checked++
    }
  }
  assert.ok(checked >= 40, `only ${checked} routes checked`)
  // And nothing in the document that is not served.
  const served = new Set(routes.map((r) => r.url.replace(/:([A-Za-z_]+)/g, '{$1}')))
  for (const path of Object.keys(doc.paths)) assert.ok(served.has(path), `${path} is documented but not served`)
})

test('admin routes document their answers and security', async (t) => {
  const { doc } = await documentAndRoutes(t)
  const keys = doc.paths['/admin/api/projects/{project_id}/keys']?.['get']
  const schema = keys?.responses?.['200']?.content?.['application/json']?.schema
  assert.deepEqual(schema?.required, ['keys'])
  const rotate = doc.paths['/admin/api/projects/{project_id}/keys/{key_id}/rotate']?.['post']
  assert.deepEqual(rotate?.responses?.['201']?.content?.['application/json']?.schema.required, [
    'key',
    'secret',
    'previous',
  ])
  const query = doc.paths['/admin/api/projects/{project_id}/segments/query']?.['post']
  assert.deepEqual(query?.responses?.['200']?.content?.['application/json']?.schema.required, [
    'count',
    'user_ids',
    'next_cursor',
  ])
})

test('/docs renders the document', async (t) => {
  const { app } = await documentAndRoutes(t)
  const r = await app.inject({ method: 'GET', url: '/docs/' })
  assert.equal(r.statusCode, 200)
  assert.match(r.body, /swagger-ui/i)
})

/** Every key of T, required: an object literal typed with it must name each exactly once. */
type Exact<T> = { [K in keyof Required<T>]: unknown }

function dataSchema(doc: Doc, path: string, method: string): Schema {
  const s = doc.paths[path]?.[method]?.responses?.['200']?.content?.['application/json']?.schema
  const data = s?.properties?.['data']
  assert.ok(data !== undefined, `${method} ${path} documents no data`)
  return data
}

test("the SDK's types agree with the document", async (t) => {
  const { doc } = await documentAndRoutes(t)
  // Type-checked: adding or removing a field in the SDK type breaks these literals at compile time,
  // and the runtime check below compares the same names with the document.
  const profile: Exact<ProfileData> = { user_id: 0, attributes: 0, created_at: 0, updated_at: 0 }
  const page: Exact<SegmentPage> = { count: 0, user_ids: 0, next_cursor: 0 }
  for (const [fields, path, method] of [
    [profile, '/v1/user/profiles/{user_id}', 'get'],
    [profile, '/v1/user/profiles', 'get'],
    [page, '/v1/user/segments/query', 'post'],
  ] as const) {
    const schema = dataSchema(doc, path, method)
    assert.deepEqual(Object.keys(fields).sort(), Object.keys(schema.properties ?? {}).sort(), `${method} ${path}`)
    assert.deepEqual([...(schema.required ?? [])].sort(), Object.keys(fields).sort())
  }
  // Every request the SDK sends, recorded on the wire against the real server, goes to a documented
  // method and path (however the client builds its calls).
  const { app, store } = await documentAndRoutes(t)
  const secret = await createTestKey(store, 'sdk')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  const sent: { method: string; path: string; status: number }[] = []
  const recording: typeof fetch = async (input, init) => {
    const response = await fetch(input, init)
    const url = new URL(input instanceof Request ? input.url : String(input))
    sent.push({ method: (init?.method ?? 'GET').toUpperCase(), path: url.pathname, status: response.status })
    return response
  }
  const client = createClient({ baseUrl: `http://127.0.0.1:${address.port}`, apiKey: secret, fetch: recording })
  await client.postProfiles(['user_id', 'plan'], [['u1', 'pro']])
  const summary = await client.uploadProfiles([{ user_id: 'u2', plan: 'free' }])
  assert.deepEqual([summary.failed, summary.rejected], [0, 0])
  assert.equal((await client.getProfile('u1'))?.user_id, 'u1')
  assert.equal(await client.getProfile('..'), null)
  for await (const page of client.querySegment({ field: 'plan', op: 'exists' })) assert.equal(page.count, 2)
  assert.equal(await client.deleteProfile('u1'), true)
  assert.ok(sent.length >= 6)
  const templates = Object.keys(doc.paths).map((path) => ({
    path,
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }))
  for (const { method, path, status } of sent) {
    assert.ok(status < 500, `${method} ${path}: ${status}`)
    const documented = templates
      .filter((x) => x.pattern.test(path))
      .some((x) => doc.paths[x.path]?.[method.toLowerCase()])
    assert.ok(documented, `the SDK sent ${method} ${path}, which the document does not describe`)
  }
})
