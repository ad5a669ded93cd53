import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { buildTestApp } from '../test-app.js'

const DAY = 86_400_000
const T0 = Date.parse('2025-03-31T12:00:00Z')

async function setup(t: TestContext) {
  const clock = { now: T0 }
  const ctx = await buildTestApp(t, {}, () => clock.now)
  const k = await ctx.key('dates')
  const send = (method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) =>
    ctx.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${k}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    })
  // Signed up 1, 10, 20, 29 and 40 days before T0; u6 has a bare date, u7 no date at all.
  const upload = await send('POST', '/v1/user/profiles', {
    field_name: ['user_id', 'signup', 'trial_end'],
    values: [
      ['u1', new Date(T0 - 1 * DAY).toISOString(), '2025-04-02'],
      ['u2', new Date(T0 - 10 * DAY).toISOString(), '2025-04-10T00:00:00+09:00'],
      ['u3', new Date(T0 - 20 * DAY).toISOString(), ''],
      ['u4', new Date(T0 - 29 * DAY).toISOString(), '2025-03-30'],
      ['u5', new Date(T0 - 40 * DAY).toISOString(), ''],
      ['u6', '2025-03-02', ''],
      ['u7', 'last tuesday', ''],
    ],
  })
  assert.equal(upload.statusCode, 200, upload.body)
  const { id: projectId } = (await ctx.store.findProject('dates'))!
  return { ...ctx, clock, send, projectId }
}

type Send = Awaited<ReturnType<typeof setup>>['send']

const ids = async (send: Send, where: unknown) => {
  const r = await send('POST', '/v1/user/segments/query', { where, limit: 1000 })
  assert.equal(r.statusCode, 200, r.body)
  return (r.json() as { data: { user_ids: string[]; count: number } }).data
}

const LAST_30 = { field: 'signup', op: 'within_last', value: { amount: 30, unit: 'days' } }

describe('date conditions over HTTP', () => {
  test('relative conditions follow the clock with no upload: query and saved segment counts', async (t) => {
    const { send, clock } = await setup(t)
    assert.deepEqual((await ids(send, LAST_30)).user_ids, ['u1', 'u2', 'u3', 'u4', 'u6'])
    const saved = await send('POST', '/v1/user/segments', { name: 'new signups', where: LAST_30 })
    assert.equal(saved.statusCode, 201, saved.body)
    assert.equal(saved.json().data.count, 5)
    clock.now = T0 + 1.5 * DAY
    // u4 (29 days) and u6 (March 2nd, 00:00) are now more than 30 days ago.
    assert.deepEqual((await ids(send, LAST_30)).user_ids, ['u1', 'u2', 'u3'])
    const again = await send('GET', `/v1/user/segments/${saved.json().data.id}`)
    assert.equal(again.json().data.count, 3)
    const list = await send('GET', '/v1/user/segments')
    assert.equal(list.json().data.segments[0].count, 3)
    const older = await ids(send, { field: 'signup', op: 'more_than_ago', value: { amount: 30, unit: 'days' } })
    assert.deepEqual(older.user_ids, ['u4', 'u5', 'u6'])
    // Now is 2025-04-02T00:00Z: u1's trial ends at this very moment, which is past, not future.
    const soon = await ids(send, { field: 'trial_end', op: 'within_next', value: { amount: 10, unit: 'days' } })
    assert.deepEqual(soon.user_ids, ['u2'])
    const ended = await ids(send, { field: 'trial_end', op: 'within_last', value: { amount: 1, unit: 'days' } })
    assert.deepEqual(ended.user_ids, ['u1'])
  })

  test('a cursor walk keeps the "now" of its first page across a clock tick', async (t) => {
    const { send, clock } = await setup(t)
    const first = await send('POST', '/v1/user/segments/query', { where: LAST_30, limit: 2 })
    assert.deepEqual(first.json().data.user_ids, ['u1', 'u2'])
    assert.equal(first.json().data.count, 5)
    clock.now = T0 + 1.5 * DAY
    const seen: string[] = [...first.json().data.user_ids]
    let cursor: string | null = first.json().data.next_cursor
    while (cursor !== null) {
      const page = await send('POST', '/v1/user/segments/query', { where: LAST_30, limit: 2, cursor })
      assert.equal(page.statusCode, 200, page.body)
      assert.equal(page.json().data.count, 5, 'every page counts with the walk’s now')
      seen.push(...page.json().data.user_ids)
      cursor = page.json().data.next_cursor
    }
    assert.deepEqual(seen, ['u1', 'u2', 'u3', 'u4', 'u6'])
    // A new walk takes the new now.
    const fresh = await send('POST', '/v1/user/segments/query', { where: LAST_30, limit: 2 })
    assert.equal(fresh.json().data.count, 3)
  })

  test('the project time zone decides where a bare date begins: Asia/Tokyo against UTC', async (t) => {
    const { send, store, projectId } = await setup(t)
    // u6 signed up on 2025-03-02; T0 − 29 days is 2025-03-02T12:00Z (u4).
    const where = { field: 'signup', op: 'before', value: '2025-03-02T10:00:00Z' }
    assert.deepEqual((await ids(send, where)).user_ids, ['u5', 'u6'])
    assert.equal(await store.getProjectTimeZone(projectId), 'UTC')
    assert.equal(await store.setProjectTimeZone(projectId, 'asia/tokyo'), 'Asia/Tokyo')
    // In Tokyo March 2nd begins at 2025-03-01T15:00Z: still before 10:00Z. Bounds move too:
    assert.deepEqual((await ids(send, where)).user_ids, ['u5', 'u6'])
    const bare = { field: 'signup', op: 'after', value: '2025-03-02' }
    assert.deepEqual((await ids(send, bare)).user_ids, ['u1', 'u2', 'u3', 'u4'])
    const utcMidnight = { field: 'signup', op: 'before', value: '2025-03-01T16:00:00Z' }
    // u6's March 2nd (Tokyo) began at 15:00Z on March 1st; in UTC it begins 9 hours later.
    assert.deepEqual((await ids(send, utcMidnight)).user_ids, ['u5', 'u6'])
    await store.setProjectTimeZone(projectId, 'UTC')
    assert.deepEqual((await ids(send, utcMidnight)).user_ids, ['u5'])
    await assert.rejects(store.setProjectTimeZone(projectId, 'Mars/Olympus'), /time_zone: must be an IANA time zone/)
    assert.equal(await store.getProjectTimeZone(projectId), 'UTC')
  })

  test('malformed dates and units are 400s naming the place', async (t) => {
    const { send } = await setup(t)
    const r = await send('POST', '/v1/user/segments/query', {
      where: { all: [{ field: 'signup', op: 'between', value: { from: '2025-02-30', to: '2025-03-01' } }] },
    })
    assert.equal(r.statusCode, 400)
    assert.match(r.json().msg, /^where\.all\[0\]\.value\.from: must be a date/)
    const unit = await send('POST', '/v1/user/segments/query', {
      where: { field: 'signup', op: 'within_last', value: { amount: 30, unit: 'fortnights' } },
    })
    assert.equal(unit.statusCode, 400)
    assert.match(unit.json().msg, /^where\.value\.unit: must be one of "minutes"/)
  })

  test('exports read every page with one now', async (t) => {
    const { send } = await setup(t)
    const r = await send('POST', '/v1/user/segments/export', { where: LAST_30, fields: ['signup'] })
    assert.equal(r.statusCode, 200, r.body)
    assert.deepEqual(
      r.body
        .trim()
        .split('\r\n')
        .slice(1)
        .map((l) => l.split(',')[0]),
      ['u1', 'u2', 'u3', 'u4', 'u6'],
    )
  })

  test('the catalog reports each attribute’s type, shares and number/date extremes', async (t) => {
    const { send } = await setup(t)
    const more = await send('POST', '/v1/user/profiles', {
      field_name: ['user_id', 'ltv', 'vip', 'mixed'],
      values: [
        ['u1', 12.5, true, '2025-01-01'],
        ['u2', -3, false, 7],
        ['u3', '1e3', 'true', 'seven'],
        ['u4', '', '', 'true'],
      ],
    })
    assert.equal(more.statusCode, 200, more.body)
    const r = await send('GET', '/v1/user/attributes')
    assert.equal(r.statusCode, 200)
    const byName = Object.fromEntries(
      (r.json().data.attributes as { name: string }[]).map((a) => [a.name, a as Record<string, unknown>]),
    )
    assert.equal(r.json().data.time_zone, 'UTC')
    assert.deepEqual(
      { type: byName.ltv?.type, shares: byName.ltv?.shares, min: byName.ltv?.min, max: byName.ltv?.max },
      { type: 'number', shares: { number: 1 }, min: -3, max: 1000 },
    )
    assert.deepEqual([byName.vip?.type, byName.vip?.min], ['boolean', null])
    assert.deepEqual(
      { type: byName.signup?.type, shares: byName.signup?.shares, min: byName.signup?.min, max: byName.signup?.max },
      {
        type: 'mixed',
        shares: { string: 0.1429, date: 0.8571 },
        min: null,
        max: null,
      },
    )
    assert.deepEqual(
      { type: byName.trial_end?.type, min: byName.trial_end?.min, max: byName.trial_end?.max },
      // 2025-04-10T00:00+09:00 is April 9th, 15:00 UTC.
      { type: 'date', min: '2025-03-30', max: '2025-04-09T15:00:00.000Z' },
    )
    assert.deepEqual(byName.mixed?.shares, { string: 0.25, number: 0.25, boolean: 0.25, date: 0.25 })
    assert.equal(byName.mixed?.type, 'mixed')
  })
})
