import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test, type TestContext } from 'node:test'
import type { RouteOptions } from 'fastify'
import type { ProfileData, SegmentPage } from '../../sdk/index.js'
import { openStore } from '../../storage/open-store.js'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { createMetrics } from '../metrics.js'

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
  return { doc: r.json() as Doc, routes, app }
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
  // Every request the SDK sends goes to a documented method and path.
  const source = readFileSync(new URL('../../sdk/client.ts', import.meta.url), 'utf8')
  const calls = [...source.matchAll(/call\('([A-Z]+)', (PROFILES_PATH|'[^']+'|profilePath\(userId\))/g)]
  assert.ok(calls.length >= 4)
  for (const [, method, target] of calls) {
    const paths =
      target === 'PROFILES_PATH'
        ? ['/v1/user/profiles']
        : target === 'profilePath(userId)'
          ? ['/v1/user/profiles/{user_id}', '/v1/user/profiles']
          : [(target as string).slice(1, -1)]
    for (const path of paths) {
      assert.ok(doc.paths[path]?.[(method as string).toLowerCase()], `SDK calls ${method} ${path}, undocumented`)
    }
  }
})
