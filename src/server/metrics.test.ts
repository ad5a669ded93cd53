import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { buildTestApp } from './test-app.js'

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

describe('GET /metrics and GET /healthz', () => {
  test('counts users created, updated and values written, and requests by route pattern and status', async (t) => {
    const { app, key } = await buildTestApp(t)
    const k = await key('alpha')
    const post = (payload: unknown) =>
      app.inject({
        method: 'POST',
        url: '/v1/user/profiles',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      })
    assert.equal(
      (
        await post({
          field_name: ['user_id', 'a', 'b'],
          values: [
            ['u1', '1', '2'],
            ['u2', '1', ''],
          ],
        })
      ).statusCode,
      200,
    )
    assert.equal(
      (
        await post({
          field_name: ['user_id', 'a'],
          values: [
            ['u1', '9'],
            ['u3', '1'],
          ],
        })
      ).statusCode,
      200,
    )
    await app.inject({
      method: 'GET',
      url: '/v1/user/profiles/secret-user-id',
      headers: { authorization: `Bearer ${k}` },
    })
    await app.inject({ method: 'GET', url: '/no/such/path' })

    const res = await app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(res.statusCode, 200)
    assert.match(res.headers['content-type'] as string, /^text\/plain/)
    const text = res.body
    assert.equal(sample(text, 'traitbase_users_created_total'), 3)
    assert.equal(sample(text, 'traitbase_users_updated_total'), 1)
    assert.equal(sample(text, 'traitbase_attribute_values_written_total'), 5)
    assert.equal(sample(text, 'http_requests_total', '{route="/v1/user/profiles",method="POST",status="200"}'), 2)
    assert.equal(
      sample(text, 'http_requests_total', '{route="/v1/user/profiles/:user_id",method="GET",status="404"}'),
      1,
    )
    assert.equal(sample(text, 'http_requests_total', '{route="(unmatched)",method="GET",status="404"}'), 1)
    assert.ok(!text.includes('secret-user-id'), 'user ids never become labels')
    assert.match(text, /http_request_duration_seconds_bucket\{le="0.005",route="\/v1\/user\/profiles",method="POST"\}/)
  })

  test('healthz answers 200 with the backend kind when the database answers', async (t) => {
    const { app } = await buildTestApp(t)
    const res = await app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(res.statusCode, 200)
    assert.deepEqual((res.json() as { data: unknown }).data, { status: 'ok', store: 'sqlite' })
  })
})
