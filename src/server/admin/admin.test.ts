import assert from 'node:assert/strict'
import { after, before, describe, test, type TestContext } from 'node:test'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { ADMIN_PASSWORD_SETTING, hashPassword } from '../../storage/admin-password.js'
import { generateAdminToken } from '../../storage/api-keys.js'
import { openStore } from '../../storage/open-store.js'
import { createTestDatabase, type TestDatabase } from '../../storage/postgres/test-database.js'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { createMetrics } from '../metrics.js'
import { buildTestApp } from '../test-app.js'

const PASSWORD = 'correct horse battery'

interface Signed {
  readonly cookie: string
  readonly csrf: string
}

async function signIn(app: FastifyInstance, password = PASSWORD, remoteAddress?: string): Promise<Signed> {
  const r = await app.inject({
    method: 'POST',
    url: '/admin/api/session',
    payload: { password },
    ...(remoteAddress ? { remoteAddress } : {}),
  })
  assert.equal(r.statusCode, 200, r.body)
  const cookie = String(r.headers['set-cookie']).split(';')[0] as string
  return { cookie, csrf: (r.json() as { csrf_token: string }).csrf_token }
}

/** A console call: cookie, plus the CSRF header on state changes. */
function as(app: FastifyInstance, s: Signed) {
  return (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({
      method,
      url,
      headers: { cookie: s.cookie, ...(method === 'GET' ? {} : { 'x-csrf-token': s.csrf }) },
      ...(payload === undefined ? {} : { payload: payload as object }),
    })
}

async function upload(
  app: FastifyInstance,
  secret: string,
  body: unknown,
  query = '',
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: `/v1/user/profiles${query}`,
    headers: { authorization: `Bearer ${secret}` },
    payload: body as object,
  })
}

async function setup(t: TestContext, env: Record<string, string> = {}, now?: () => number) {
  const ta = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD, ...env }, now)
  const s = await signIn(ta.app)
  const call = as(ta.app, s)
  const project = (await call('POST', '/admin/api/projects', { name: 'demo' })).json() as { id: number }
  const created = (await call('POST', `/admin/api/projects/${project.id}/keys`, { label: 'ci' })).json() as {
    key: { id: string }
    secret: string
  }
  return { ...ta, s, call, project, key: created.key, secret: created.secret }
}

describe('admin API: sign-in', () => {
  test('no password set: the session says so and sign-in is a 409 naming both ways to set one', async (t) => {
    const { app } = await buildTestApp(t)
    const state = await app.inject({ method: 'GET', url: '/admin/api/session' })
    assert.deepEqual(state.json(), { password_set: false, signed_in: false, csrf_token: null })
    const r = await app.inject({ method: 'POST', url: '/admin/api/session', payload: { password: 'whatever1' } })
    assert.equal(r.statusCode, 409)
    assert.match(r.json().msg, /traitbase admin set-password/)
    assert.match(r.json().msg, /TRAITBASE_ADMIN_PASSWORD/)
    assert.equal((await app.inject({ method: 'GET', url: '/admin/api/projects' })).statusCode, 401)
  })

  test('the stored scrypt password signs in; the cookie is HttpOnly, SameSite=Strict, Path=/', async (t) => {
    const { app, store } = await buildTestApp(t)
    await store.setSetting(ADMIN_PASSWORD_SETTING, await hashPassword('stored password'))
    const wrong = await app.inject({ method: 'POST', url: '/admin/api/session', payload: { password: 'nope' } })
    assert.equal(wrong.statusCode, 401)
    assert.equal(wrong.headers['set-cookie'], undefined)
    const r = await app.inject({ method: 'POST', url: '/admin/api/session', payload: { password: 'stored password' } })
    assert.equal(r.statusCode, 200)
    const cookie = String(r.headers['set-cookie'])
    assert.match(cookie, /^tb_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/)
    const body = r.json() as { signed_in: boolean; csrf_token: string }
    assert.equal(body.signed_in, true)
    const state = await app.inject({
      method: 'GET',
      url: '/admin/api/session',
      headers: { cookie: cookie.split(';')[0] as string },
    })
    assert.deepEqual(state.json(), { password_set: true, signed_in: true, csrf_token: body.csrf_token })
  })

  test('Secure cookie over HTTPS from a trusted proxy, not from an untrusted one', async (t) => {
    const trusted = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD, TRUST_PROXY: '1' })
    const headers = { 'x-forwarded-proto': 'https' }
    const a = await trusted.app.inject({
      method: 'POST',
      url: '/admin/api/session',
      headers,
      payload: { password: PASSWORD },
    })
    assert.match(String(a.headers['set-cookie']), /; Secure$/)
    const untrusted = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD })
    const b = await untrusted.app.inject({
      method: 'POST',
      url: '/admin/api/session',
      headers,
      payload: { password: PASSWORD },
    })
    assert.doesNotMatch(String(b.headers['set-cookie']), /Secure/)
  })

  test('bad sign-in bodies are 400s that name the field', async (t) => {
    const { app } = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD })
    for (const payload of [{}, { password: 3 }, { password: '' }, { password: 'x', extra: 1 }]) {
      const r = await app.inject({ method: 'POST', url: '/admin/api/session', payload })
      assert.equal(r.statusCode, 400, JSON.stringify(payload))
      assert.ok(r.json().errors.length > 0)
    }
    const r = await app.inject({
      method: 'POST',
      url: '/admin/api/session',
      payload: '{',
      headers: { 'content-type': 'application/json' },
    })
    assert.equal(r.statusCode, 400)
  })

  test('sign-out invalidates the session on the server, and needs the CSRF token', async (t) => {
    const { app } = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD })
    const s = await signIn(app)
    const noCsrf = await app.inject({ method: 'DELETE', url: '/admin/api/session', headers: { cookie: s.cookie } })
    assert.equal(noCsrf.statusCode, 403)
    const out = await as(app, s)('DELETE', '/admin/api/session')
    assert.equal(out.statusCode, 200)
    assert.match(String(out.headers['set-cookie']), /^tb_session=; .*Max-Age=0/)
    // The old cookie, replayed, opens nothing.
    assert.equal((await as(app, s)('GET', '/admin/api/projects')).statusCode, 401)
  })

  test('repeated failures from one address are throttled with Retry-After; others still sign in', async (t) => {
    const { app } = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD })
    const from = (remoteAddress: string, password: string) =>
      app.inject({ method: 'POST', url: '/admin/api/session', payload: { password }, remoteAddress })
    for (let i = 0; i < 5; i++) assert.equal((await from('10.0.0.1', `wrong${i}`)).statusCode, 401)
    const blocked = await from('10.0.0.1', PASSWORD)
    assert.equal(blocked.statusCode, 429, 'even the right password waits')
    const wait = Number(blocked.headers['retry-after'])
    assert.ok(wait > 0 && wait <= 900, String(wait))
    assert.equal((await from('10.0.0.2', PASSWORD)).statusCode, 200)
  })

  test('a global limit throttles failures spread over many addresses', async (t) => {
    const store = await openStore('sqlite::memory:')
    const app = buildApp({
      store,
      config: loadConfig({ LOG_LEVEL: 'silent', TRAITBASE_ADMIN_PASSWORD: PASSWORD }),
      metrics: createMetrics({ defaultMetrics: false }),
      loginLimits: { windowMs: 60_000, perIp: 100, global: 3 },
    })
    t.after(async () => {
      await app.close()
      await store.close()
    })
    for (let i = 0; i < 3; i++) {
      const r = await app.inject({
        method: 'POST',
        url: '/admin/api/session',
        payload: { password: 'x' },
        remoteAddress: `10.1.0.${i}`,
      })
      assert.equal(r.statusCode, 401)
    }
    const r = await app.inject({
      method: 'POST',
      url: '/admin/api/session',
      payload: { password: PASSWORD },
      remoteAddress: '10.9.9.9',
    })
    assert.equal(r.statusCode, 429)
    assert.match(r.json().msg, /on this server/)
  })
})

describe('admin API: who may call it', () => {
  test('API keys never open /admin/api; the cookie never opens /v1', async (t) => {
    const { app, secret, s } = await setup(t)
    const withKey = await app.inject({
      method: 'GET',
      url: '/admin/api/projects',
      headers: { authorization: `Bearer ${secret}` },
    })
    assert.equal(withKey.statusCode, 401)
    assert.match(withKey.json().msg, /API keys \(tbk_…\) do not open the admin API/)
    const withCookie = await app.inject({ method: 'GET', url: '/v1/user/profiles/u1', headers: { cookie: s.cookie } })
    assert.equal(withCookie.statusCode, 401)
    assert.match(withCookie.json().msg, /Missing Authorization header/)
  })

  test('cookie requests that change state need the CSRF token of their session', async (t) => {
    const { app, s } = await setup(t)
    const post = (headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/admin/api/projects',
        headers: { cookie: s.cookie, ...headers },
        payload: { name: 'x' },
      })
    assert.equal((await post({})).statusCode, 403)
    assert.equal((await post({ 'x-csrf-token': 'wrong' })).statusCode, 403)
    const other = await signIn(app)
    assert.equal((await post({ 'x-csrf-token': other.csrf })).statusCode, 403, "another session's token")
    assert.equal((await post({ 'x-csrf-token': s.csrf })).statusCode, 201)
  })

  test('admin tokens open the admin API without CSRF; revoked or unknown ones do not', async (t) => {
    const { app, store } = await setup(t)
    const { secret, hash } = generateAdminToken()
    const token = await store.createAdminToken({ label: 'ci', hash })
    const headers = { authorization: `Bearer ${secret}` }
    const created = await app.inject({
      method: 'POST',
      url: '/admin/api/projects',
      headers,
      payload: { name: 'scripted' },
    })
    assert.equal(created.statusCode, 201)
    const id = (created.json() as { id: number }).id
    const key = await app.inject({ method: 'POST', url: `/admin/api/projects/${id}/keys`, headers, payload: {} })
    assert.equal(key.statusCode, 201)
    const events = await app.inject({ method: 'GET', url: `/admin/api/projects/${id}/key-events`, headers })
    assert.equal(events.json().events[0].actor, `token:${token.id}`)
    const unknown = generateAdminToken().secret
    assert.equal(
      (await app.inject({ method: 'GET', url: '/admin/api/projects', headers: { authorization: `Bearer ${unknown}` } }))
        .statusCode,
      401,
    )
    await store.revokeAdminToken(token.id)
    assert.equal((await app.inject({ method: 'GET', url: '/admin/api/projects', headers })).statusCode, 401)
  })

  test('a wrong method on an admin path is a 405 with Allow, before any auth', async (t) => {
    const { app } = await buildTestApp(t)
    const r = await app.inject({ method: 'PUT', url: '/admin/api/projects' })
    assert.equal(r.statusCode, 405)
    assert.equal(r.headers['allow'], 'GET, HEAD, POST')
  })

  test('an expired session opens nothing', async (t) => {
    let clock = Date.now()
    const { app, s } = await setup(t, { ADMIN_SESSION_HOURS: '1' }, () => clock)
    assert.equal((await as(app, s)('GET', '/admin/api/projects')).statusCode, 200)
    clock += 3600_000 + 1000
    assert.equal((await as(app, s)('GET', '/admin/api/projects')).statusCode, 401)
  })

  test('a session in use slides: its expiry and its cookie move forward', async (t) => {
    let clock = Date.now()
    const { app, s } = await setup(t, { ADMIN_SESSION_HOURS: '1' }, () => clock)
    clock += 40 * 60_000
    const used = await as(app, s)('GET', '/admin/api/projects')
    assert.equal(used.statusCode, 200)
    assert.match(String(used.headers['set-cookie']), /^tb_session=[A-Za-z0-9_-]{43}; .*Max-Age=3600/)
    // Give the fire-and-forget extension its turn.
    await new Promise((resolve) => setTimeout(resolve, 50))
    clock += 40 * 60_000
    assert.equal((await as(app, s)('GET', '/admin/api/projects')).statusCode, 200, '80 min after sign-in, 40 after use')
  })
})

describe('admin API: projects and keys', () => {
  test('projects: list with users and last upload, create (409 on a taken name), rename', async (t) => {
    const { app, call, project, secret } = await setup(t)
    assert.equal((await call('POST', '/admin/api/projects', { name: 'demo' })).statusCode, 409)
    const bad = await call('POST', '/admin/api/projects', { name: '  ' })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().errors[0].path, 'name')
    assert.equal(
      (
        await upload(app, secret, {
          field_name: ['user_id', 'a'],
          values: [
            ['u1', 'x'],
            ['u2', 'y'],
          ],
        })
      ).statusCode,
      200,
    )
    await app.flushRequestLog()
    const list = (await call('GET', '/admin/api/projects')).json() as { projects: Record<string, unknown>[] }
    const demo = list.projects.find((p) => p['id'] === project.id) as Record<string, unknown>
    assert.equal(demo['users'], 2)
    assert.match(String(demo['last_upload_at']), /Z$/)
    const renamed = await call('PATCH', `/admin/api/projects/${project.id}`, { name: 'renamed' })
    assert.equal(renamed.statusCode, 200)
    assert.equal(renamed.json().name, 'renamed')
    assert.equal(renamed.json().users, 2)
    assert.equal((await call('PATCH', '/admin/api/projects/999', { name: 'x' })).statusCode, 404)
    assert.equal((await call('GET', '/admin/api/projects/abc')).statusCode, 404)
  })

  test('time zone: PATCH sets it (canonical name), a bad one is a 400 that changes nothing, segments use it', async (t) => {
    const { call, project, app, secret } = await setup(t)
    const url = `/admin/api/projects/${project.id}`
    assert.equal((await call('GET', url)).json().time_zone, 'UTC')
    const bad = await call('PATCH', url, { name: 'other', time_zone: 'Mars/Olympus' })
    assert.equal(bad.statusCode, 400, bad.body)
    assert.match(bad.json().msg, /time_zone/)
    assert.deepEqual([(await call('GET', url)).json().name, (await call('GET', url)).json().time_zone], ['demo', 'UTC'])
    assert.equal((await call('PATCH', url, {})).statusCode, 400)
    assert.equal((await call('PATCH', url, { time_zone: 42 })).statusCode, 400)
    const set = await call('PATCH', url, { time_zone: 'asia/tokyo' })
    assert.equal(set.statusCode, 200, set.body)
    assert.equal(set.json().time_zone, 'Asia/Tokyo')
    assert.equal(set.json().name, 'demo')
    // A bare date is midnight in Tokyo: 2026-03-01 is 2026-02-28T15:00Z, so it is before 2026-02-28T16:00Z.
    const up = await upload(app, secret, { field_name: ['user_id', 'signup'], values: [['u1', '2026-03-01']] })
    assert.equal(up.statusCode, 200, up.body)
    const q = await call('POST', `${url}/segments/query`, {
      where: { field: 'signup', op: 'before', value: '2026-02-28T16:00:00Z' },
    })
    assert.equal(q.json().count, 1, q.body)
  })

  test('keys: create shows the secret once, list never does; revoke stops the key at once', async (t) => {
    const { app, call, project, secret, key } = await setup(t)
    const listed = await call('GET', `/admin/api/projects/${project.id}/keys`)
    assert.doesNotMatch(listed.body, /tbk_/)
    assert.deepEqual(Object.keys(listed.json().keys[0]), [
      'id',
      'label',
      'scopes',
      'created_at',
      'last_used_at',
      'revoked_at',
      'expires_at',
      'state',
    ])
    assert.equal(listed.json().keys[0].state, 'active')
    const scoped = await call('POST', `/admin/api/projects/${project.id}/keys`, {
      label: 'reader',
      scopes: ['profiles:read'],
    })
    assert.deepEqual(scoped.json().key.scopes, ['profiles:read'])
    const badScope = await call('POST', `/admin/api/projects/${project.id}/keys`, { scopes: ['admin'] })
    assert.equal(badScope.statusCode, 400)
    assert.equal(badScope.json().errors[0].path, 'scopes[0]')
    const body = { field_name: ['user_id', 'a'], values: [['u1', 'x']] }
    assert.equal((await upload(app, secret, body)).statusCode, 200)
    const revoked = await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/revoke`)
    assert.equal(revoked.json().state, 'revoked')
    assert.equal((await upload(app, secret, body)).statusCode, 401)
    assert.equal((await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/revoke`)).statusCode, 409)
    const events = (await call('GET', `/admin/api/projects/${project.id}/key-events`)).json().events as {
      event: string
      actor: string
    }[]
    assert.deepEqual(
      events.map((e) => [e.event, e.actor]),
      [
        ['revoked', 'session'],
        ['created', 'session'],
        ['created', 'session'],
      ],
    )
  })

  test('a key of another project is a 404 there', async (t) => {
    const { call, key } = await setup(t)
    const other = (await call('POST', '/admin/api/projects', { name: 'other' })).json() as { id: number }
    assert.equal((await call('POST', `/admin/api/projects/${other.id}/keys/${key.id}/revoke`)).statusCode, 404)
  })

  test('rotation: both keys work during the grace period, then the old one stops by itself', async (t) => {
    let clock = Date.now()
    const { app, call, project, secret, key } = await setup(t, {}, () => clock)
    const bad = await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/rotate`, { grace_seconds: -1 })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().errors[0].path, 'grace_seconds')
    const r = await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/rotate`, { grace_seconds: 3600 })
    assert.equal(r.statusCode, 201)
    const {
      key: fresh,
      secret: freshSecret,
      previous,
    } = r.json() as {
      key: { id: string; state: string; label: string }
      secret: string
      previous: { id: string; state: string; expires_at: string }
    }
    assert.equal(previous.id, key.id)
    assert.equal(previous.state, 'expiring')
    assert.equal(Date.parse(previous.expires_at), clock + 3600_000)
    assert.deepEqual([fresh.state, fresh.label], ['active', 'ci'])
    const body = { field_name: ['user_id', 'a'], values: [['u1', 'x']] }
    assert.equal((await upload(app, secret, body)).statusCode, 200)
    assert.equal((await upload(app, freshSecret, body)).statusCode, 200)
    clock += 3600_000
    const old = await upload(app, secret, body)
    assert.equal(old.statusCode, 401)
    assert.match(old.json().msg, /expired at .* \(it was rotated\)/)
    assert.equal((await upload(app, freshSecret, body)).statusCode, 200)
    const states = (await call('GET', `/admin/api/projects/${project.id}/keys`))
      .json()
      .keys.map((k: { id: string; state: string }) => [k.id, k.state])
    assert.deepEqual(new Map(states).get(key.id), 'expired')
    assert.equal(
      (await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/rotate`, { grace_seconds: 0 })).statusCode,
      409,
    )
    const events = (await call('GET', `/admin/api/projects/${project.id}/key-events`)).json().events as {
      event: string
      key_id: string
    }[]
    assert.deepEqual(
      events.slice(0, 2).map((e) => [e.event, e.key_id]),
      [
        ['created', fresh.id],
        ['rotated', key.id],
      ],
    )
  })

  test('rotation with grace 0 stops the old key now', async (t) => {
    const { app, call, project, secret, key } = await setup(t)
    await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/rotate`, { grace_seconds: 0 })
    assert.equal((await upload(app, secret, { field_name: ['user_id'], values: [['u']] })).statusCode, 401)
  })
})

describe('admin API: request log and dry runs', () => {
  test('every /v1 call is logged with its key, status, counts and the exact error message', async (t) => {
    const { app, call, project, secret, key } = await setup(t)
    await upload(app, secret, {
      field_name: ['user_id', 'a'],
      values: [
        ['u1', 'x'],
        ['u2', 'y'],
      ],
    })
    await upload(app, secret, {
      field_name: ['user_id', 'a'],
      values: [
        ['u1', 'z'],
        ['u3', null],
      ],
    })
    await app.inject({ method: 'GET', url: '/v1/user/profiles/u1', headers: { authorization: `Bearer ${secret}` } })
    await app.inject({ method: 'GET', url: '/v1/user/profiles/u1', headers: { authorization: 'Bearer tbk_unknown' } })
    await app.flushRequestLog()
    const r = await call('GET', `/admin/api/projects/${project.id}/requests`)
    assert.equal(r.statusCode, 200)
    const { requests, next_before } = r.json() as { requests: Record<string, unknown>[]; next_before: number | null }
    assert.equal(next_before, null)
    assert.equal(requests.length, 3, 'the unknown-key 401 belongs to no project')
    const [read, failed, ok] = requests as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>]
    assert.deepEqual(
      [read['method'], read['path'], read['status'], read['users_created'], read['error']],
      ['GET', '/v1/user/profiles/u1', 200, null, null],
    )
    assert.equal(failed['status'], 400)
    assert.equal(failed['error'], 'values[1][1]: field "a": must be a string, number or boolean, got null')
    assert.deepEqual([ok['users_created'], ok['users_updated'], ok['key_id'], ok['key_label']], [2, 0, key.id, 'ci'])
    assert.match(String(ok['request_id']), /./)
    assert.ok(typeof ok['duration_ms'] === 'number')
    const only4 = (await call('GET', `/admin/api/projects/${project.id}/requests?status=4xx`)).json().requests
    assert.deepEqual(
      only4.map((x: { status: number }) => x.status),
      [400],
    )
    const newer = (await call('GET', `/admin/api/projects/${project.id}/requests?after=${String(failed['id'])}`)).json()
      .requests
    assert.deepEqual(
      newer.map((x: { id: number }) => x.id),
      [read['id']],
    )
    const paged = (await call('GET', `/admin/api/projects/${project.id}/requests?limit=2`)).json()
    assert.equal(paged.next_before, failed['id'])
    const byKey = (await call('GET', `/admin/api/projects/${project.id}/requests?key_id=key_nope`)).json().requests
    assert.deepEqual(byKey, [])
    for (const q of ['status=3x', 'limit=0', 'limit=501', 'before=abc', 'status=2xx&status=4xx']) {
      const bad = await call('GET', `/admin/api/projects/${project.id}/requests?${q}`)
      assert.equal(bad.statusCode, 400, q)
    }
  })

  test('dry run answers exactly as an upload would, 400s included, writes nothing, and is marked in the log', async (t) => {
    const { app, call, project, secret, store } = await setup(t)
    const good = { field_name: ['user_id', 'a'], values: [['u1', 'x']] }
    const bad = { field_name: ['user_id', 'a'], values: [['u1', null]] }
    const real = await upload(app, secret, bad)
    const dry = await upload(app, secret, bad, '?dry_run=true')
    assert.equal(dry.statusCode, real.statusCode)
    assert.deepEqual(dry.json(), real.json())
    const ok = await upload(app, secret, good, '?dry_run=true')
    assert.equal(ok.statusCode, 200)
    assert.equal(ok.json().msg, 'Success')
    assert.equal(await store.getProfile(project.id, 'u1'), undefined)
    assert.equal((await upload(app, secret, good, '?dry_run=maybe')).statusCode, 400)
    await app.flushRequestLog()
    const log = (await call('GET', `/admin/api/projects/${project.id}/requests`)).json().requests as Record<
      string,
      unknown
    >[]
    assert.deepEqual(
      log.map((e) => [e['status'], e['dry_run']]),
      [
        [400, false],
        [200, true],
        [400, true],
        [400, false],
      ],
    )
    const list = (await call('GET', '/admin/api/projects')).json().projects
    assert.equal(list[0].last_upload_at, null, 'a dry run is not an upload')
  })

  test('REQUEST_LOG=off writes no log', async (t) => {
    const { app, call, project, secret } = await setup(t, { REQUEST_LOG: 'off' })
    await upload(app, secret, { field_name: ['user_id'], values: [['u']] })
    await app.flushRequestLog()
    assert.deepEqual((await call('GET', `/admin/api/projects/${project.id}/requests`)).json().requests, [])
  })
})

describe('admin API: users, catalog, segments', () => {
  test('users: prefix listing with paging, lookup, delete', async (t) => {
    const { app, call, project, secret } = await setup(t)
    const ids = ['a1', 'a2', 'a3', 'b1', 'a/b']
    await upload(app, secret, { field_name: ['user_id', 'plan'], values: ids.map((id) => [id, 'pro']) })
    const page1 = (await call('GET', `/admin/api/projects/${project.id}/users?prefix=a&limit=2`)).json()
    assert.deepEqual(
      page1.users.map((u: { user_id: string }) => u.user_id),
      ['a/b', 'a1'],
    )
    assert.equal(page1.next_after, 'a1')
    const page2 = (await call('GET', `/admin/api/projects/${project.id}/users?prefix=a&limit=2&after=a1`)).json()
    assert.deepEqual(
      page2.users.map((u: { user_id: string }) => u.user_id),
      ['a2', 'a3'],
    )
    assert.equal(page2.next_after, null)
    const one = await call('GET', `/admin/api/projects/${project.id}/users/${encodeURIComponent('a/b')}`)
    assert.deepEqual(Object.keys(one.json()), ['user_id', 'attributes', 'created_at', 'updated_at'])
    assert.deepEqual(one.json().attributes, { plan: 'pro' })
    assert.equal((await call('GET', `/admin/api/projects/${project.id}/users/zz`)).statusCode, 404)
    assert.deepEqual((await call('DELETE', `/admin/api/projects/${project.id}/users/a1`)).json(), { deleted: true })
    assert.equal((await call('GET', `/admin/api/projects/${project.id}/users/a1`)).statusCode, 404)
    assert.equal((await call('DELETE', `/admin/api/projects/${project.id}/users/a1`)).statusCode, 404)
    assert.equal((await call('GET', `/admin/api/projects/${project.id}/users?limit=0`)).statusCode, 400)
  })

  test('catalog and segments answer as /v1 does, without the envelope; exports take format', async (t) => {
    const { app, call, project, secret } = await setup(t)
    await upload(app, secret, {
      field_name: ['user_id', 'plan', 'country'],
      values: [
        ['u1', 'pro', 'JP'],
        ['u2', 'free', 'JP'],
        ['u3', 'pro', 'US'],
      ],
    })
    const v1 = (url: string, method: 'GET' | 'POST' = 'GET', payload?: object) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${secret}` }, ...(payload ? { payload } : {}) })
    const base = `/admin/api/projects/${project.id}`
    assert.deepEqual((await call('GET', `${base}/attributes`)).json(), (await v1('/v1/user/attributes')).json().data)
    const where = {
      all: [
        { field: 'plan', op: 'eq', value: 'pro' },
        { field: 'country', op: 'eq', value: 'JP' },
      ],
    }
    const q = await call('POST', `${base}/segments/query`, { where })
    assert.deepEqual(q.json(), { count: 1, user_ids: ['u1'], next_cursor: null })
    const bad = await call('POST', `${base}/segments/query`, { where: { field: 'plan', op: 'nope' } })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().errors[0].path, 'where.op')
    const saved = await call('POST', `${base}/segments`, { name: 'JP pro', where })
    assert.equal(saved.statusCode, 201)
    const seg = saved.json() as { id: string; count: number }
    assert.equal(seg.count, 1)
    assert.equal((await call('GET', `${base}/segments`)).json().segments.length, 1)
    assert.equal(
      (await call('PUT', `${base}/segments/${seg.id}`, { name: 'pro', where: where.all[0] })).json().count,
      2,
    )
    const csv = await call('GET', `${base}/segments/${seg.id}/export?format=csv&fields=plan`)
    assert.equal(csv.headers['content-type'], 'text/csv; charset=utf-8')
    assert.match(String(csv.headers['content-disposition']), /^attachment; filename=".*\.csv"$/)
    assert.equal(csv.body, 'user_id,plan\r\nu1,pro\r\nu3,pro\r\n')
    const nd = await call('POST', `${base}/segments/export`, { where, format: 'ndjson', fields: ['country'] })
    assert.equal(nd.body, '{"user_id":"u1","attributes":{"country":"JP"}}\n')
    assert.equal((await call('POST', `${base}/segments/export`, { where, format: 'xml' })).statusCode, 400)
    assert.deepEqual((await call('DELETE', `${base}/segments/${seg.id}`)).json(), { deleted: true })
    assert.equal((await call('GET', `${base}/segments/${seg.id}`)).statusCode, 404)
    // The admin view of one project never sees another's data.
    const other = (await call('POST', '/admin/api/projects', { name: 'other' })).json() as { id: number }
    assert.equal((await call('POST', `/admin/api/projects/${other.id}/segments/query`, { where })).json().count, 0)
    assert.equal((await call('POST', '/admin/api/projects/999/segments/query', { where })).statusCode, 404)
    // Cookie requests here need the CSRF token too.
    const noCsrf = await app.inject({
      method: 'POST',
      url: `${base}/segments/query`,
      headers: { cookie: (await signIn(app)).cookie },
      payload: { where },
    })
    assert.equal(noCsrf.statusCode, 403)
  })
})

describe('admin API on PostgreSQL', () => {
  let db: TestDatabase | undefined
  let skip: string | undefined
  before(async () => {
    const created = await createTestDatabase()
    if ('skip' in created) skip = created.skip
    else db = created
  })
  after(async () => db?.drop())

  test('sign-in, project, key, upload, request log, counts, rotation and users work the same', async (t) => {
    if (db === undefined) return t.skip(skip)
    const { app } = await buildTestApp(t, { TRAITBASE_ADMIN_PASSWORD: PASSWORD }, undefined, db.url)
    const call = as(app, await signIn(app))
    const name = `pg-${Date.now()}`
    const project = (await call('POST', '/admin/api/projects', { name })).json() as { id: number }
    assert.equal((await call('POST', '/admin/api/projects', { name })).statusCode, 409)
    const { key, secret } = (await call('POST', `/admin/api/projects/${project.id}/keys`, { label: 'pg' })).json()
    assert.equal(
      (
        await upload(app, secret, {
          field_name: ['user_id', 'a'],
          values: [
            ['u1', 'x'],
            ['u2', 'y'],
          ],
        })
      ).statusCode,
      200,
    )
    assert.equal((await upload(app, secret, { field_name: ['user_id', 'a'], values: [['u1', null]] })).statusCode, 400)
    await app.flushRequestLog()
    const log = (await call('GET', `/admin/api/projects/${project.id}/requests`)).json().requests
    assert.deepEqual(
      log.map((e: { status: number; users_created: number | null }) => [e.status, e.users_created]),
      [
        [400, null],
        [200, 2],
      ],
    )
    const listed = (await call('GET', '/admin/api/projects'))
      .json()
      .projects.find((p: { id: number }) => p.id === project.id)
    assert.equal(listed.users, 2)
    assert.match(listed.last_upload_at, /Z$/)
    assert.deepEqual((await call('DELETE', `/admin/api/projects/${project.id}/users/u1`)).json(), { deleted: true })
    assert.equal((await call('GET', `/admin/api/projects/${project.id}`)).json().users, 1)
    const rotated = await call('POST', `/admin/api/projects/${project.id}/keys/${key.id}/rotate`, { grace_seconds: 0 })
    assert.equal(rotated.statusCode, 201)
    assert.equal((await upload(app, secret, { field_name: ['user_id'], values: [['u9']] })).statusCode, 401)
    assert.equal(
      (await upload(app, rotated.json().secret, { field_name: ['user_id'], values: [['u9']] })).statusCode,
      200,
    )
    const users = (await call('GET', `/admin/api/projects/${project.id}/users?prefix=u`)).json().users
    assert.deepEqual(
      users.map((u: { user_id: string }) => u.user_id),
      ['u2', 'u9'],
    )
  })
})
