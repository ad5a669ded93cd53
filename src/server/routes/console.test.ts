import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { gunzipSync } from 'node:zlib'
import Fastify from 'fastify'
import { CONSOLE_CSP, registerConsoleRoutes } from './console.js'

const now = () => 1_700_000_000_000

async function serve(t: TestContext, files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'tb-console-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  const app = Fastify()
  registerConsoleRoutes(app, { now, dir })
  await app.ready()
  t.after(async () => {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return app
}

const BUILD = {
  'index.html': '<!doctype html><script type="module" src="main-ABCDEFGH.js"></script>',
  'main-ABCDEFGH.js': `console.log(${JSON.stringify('x'.repeat(5000))})`,
  'main-IJKLMNOP.css': 'body{}',
}

test('index.html: no-cache with an ETag, a strict CSP, and a 304 when unchanged', async (t) => {
  const app = await serve(t, BUILD)
  const res = await app.inject({ url: '/console/' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8')
  assert.equal(res.headers['cache-control'], 'no-cache')
  assert.equal(res.headers['content-security-policy'], CONSOLE_CSP)
  assert.match(CONSOLE_CSP, /script-src 'self'(;|$)/)
  assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/)
  assert.match(CONSOLE_CSP, /frame-ancestors 'none'/)
  assert.equal(res.headers['x-content-type-options'], 'nosniff')
  assert.equal(res.body, BUILD['index.html'])
  const again = await app.inject({ url: '/console/', headers: { 'if-none-match': String(res.headers.etag) } })
  assert.equal(again.statusCode, 304)
  assert.equal(again.body, '')
})

test('/console redirects to /console/ so the relative asset URLs resolve', async (t) => {
  const app = await serve(t, BUILD)
  const res = await app.inject({ url: '/console' })
  assert.equal(res.statusCode, 308)
  assert.equal(res.headers.location, '/console/')
})

test('hashed assets are immutable for a year, typed, and gzipped when asked', async (t) => {
  const app = await serve(t, BUILD)
  const js = await app.inject({ url: '/console/main-ABCDEFGH.js', headers: { 'accept-encoding': 'gzip, br' } })
  assert.equal(js.statusCode, 200)
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable')
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8')
  assert.equal(js.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(js.rawPayload).toString('utf8'), BUILD['main-ABCDEFGH.js'])
  const plain = await app.inject({ url: '/console/main-ABCDEFGH.js' })
  assert.equal(plain.headers['content-encoding'], undefined)
  assert.equal(plain.body, BUILD['main-ABCDEFGH.js'])
  const css = await app.inject({ url: '/console/main-IJKLMNOP.css' })
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8')
  assert.equal(css.headers['cache-control'], 'public, max-age=31536000, immutable')
})

test('unknown files are a 404 in the envelope; other methods a 405; no path escapes the folder', async (t) => {
  const app = await serve(t, BUILD)
  const missing = await app.inject({ url: '/console/nope.js' })
  assert.equal(missing.statusCode, 404)
  assert.equal(typeof missing.json().msg, 'string')
  const escape = await app.inject({ url: '/console/..%2Fpackage.json' })
  assert.equal(escape.statusCode, 404)
  const post = await app.inject({ method: 'POST', url: '/console/' })
  assert.equal(post.statusCode, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
})

test('without a build the console answers 503 saying how to build it', async (t) => {
  const app = await serve(t, {})
  const res = await app.inject({ url: '/console/' })
  assert.equal(res.statusCode, 503)
  assert.match(res.json().msg, /npm run build/)
})
