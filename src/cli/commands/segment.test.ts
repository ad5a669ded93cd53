import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { createMemoryOutput } from '../output.js'
import { countSegment, EXIT_FAILED, EXIT_OK, EXIT_USAGE, exportSegment } from './segment.js'

const env = { TRAITBASE_URL: 'http://server.test/', TRAITBASE_API_KEY: 'tbk_test' }

function recordingFetch(respond: (url: string, init: RequestInit) => Response) {
  const calls: { url: string; init: RequestInit }[] = []
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(input), init: init ?? {} })
    return respond(String(input), init ?? {})
  }) as typeof globalThis.fetch
  return { calls, fetch }
}

function sink(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk)
      done()
    },
  })
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') }
}

test('segment count prints the count from the first page', async () => {
  const { calls, fetch } = recordingFetch(
    () =>
      new Response(
        JSON.stringify({ msg: 'Success', timestamp: 1, data: { count: 42, user_ids: ['a'], next_cursor: 'x' } }),
      ),
  )
  const out = createMemoryOutput()
  const code = await countSegment({ where: '{"field":"plan","op":"eq","value":"pro"}' }, { out, env, fetch })
  assert.equal(code, EXIT_OK, out.stderr.join('\n'))
  assert.deepEqual(out.stdout, ['42'])
  assert.equal(calls.length, 1)
  assert.equal(calls[0]?.url, 'http://server.test/v1/user/segments/query')
  assert.deepEqual(JSON.parse(String(calls[0]?.init.body)).where, { field: 'plan', op: 'eq', value: 'pro' })
})

test('usage errors exit 2 before any request', async () => {
  const { calls, fetch } = recordingFetch(() => new Response('{}'))
  for (const [options, pattern, e] of [
    [{ where: '{not json' }, /not valid JSON/, env],
    [{ where: '{"field":"a","op":"gt","value":"x"}' }, /where\.value/, env],
    [{ where: '{"all":[]}' }, /--url is required/, {}],
  ] as const) {
    const out = createMemoryOutput()
    assert.equal(await countSegment(options, { out, env: e, fetch }), EXIT_USAGE)
    assert.match(out.stderr.join('\n'), pattern)
  }
  const out = createMemoryOutput()
  assert.equal(await exportSegment({ where: '{"all":[]}', segment: 'seg_1' }, { out, env, fetch }), EXIT_USAGE)
  assert.equal(await exportSegment({ segment: 'seg_1', format: 'xml' }, { out, env, fetch }), EXIT_USAGE)
  for (const [options, pattern, e] of [
    [{ segment: 'seg_1' }, /--url must be an http/, { ...env, TRAITBASE_URL: 'localhost:8080' }],
    [{ segment: 'seg_1', fields: ' , ' }, /--fields needs at least one/, env],
    [{ segment: 'seg_1', output: '/nonexistent-dir-tb/x.csv' }, /folder does not exist or is not writable/, env],
    [{ segment: 'seg_1', output: '/tmp' }, /is a folder/, env],
  ] as const) {
    const o = createMemoryOutput()
    assert.equal(await exportSegment(options, { out: o, env: e, fetch }), EXIT_USAGE, String(pattern))
    assert.match(o.stderr.join('\n'), pattern)
  }
  assert.equal(calls.length, 0)
})

test('segment export streams the body as received, with fields and Accept', async () => {
  const { calls, fetch } = recordingFetch(() => new Response('user_id,plan\r\nu1,pro\r\n'))
  const out = createMemoryOutput()
  const target = sink()
  const code = await exportSegment(
    { segment: 'seg_a/b', fields: 'plan,ltv', format: 'ndjson' },
    { out, env, fetch, stdout: target.stream },
  )
  assert.equal(code, EXIT_OK, out.stderr.join('\n'))
  assert.equal(target.text(), 'user_id,plan\r\nu1,pro\r\n')
  assert.equal(calls[0]?.url, 'http://server.test/v1/user/segments/seg_a%2Fb/export?fields=plan%2Cltv')
  assert.equal(calls[0]?.init.method, 'GET')
  assert.equal((calls[0]?.init.headers as Record<string, string>).accept, 'application/x-ndjson')
})

test('a server error exits 1 with its status and msg', async () => {
  const { fetch } = recordingFetch(
    () =>
      new Response(JSON.stringify({ msg: 'No saved segment with this id in this project', timestamp: 1 }), {
        status: 404,
      }),
  )
  const out = createMemoryOutput()
  assert.equal(await exportSegment({ segment: 'seg_x' }, { out, env, fetch, stdout: sink().stream }), EXIT_FAILED)
  assert.match(out.stderr.join('\n'), /404 No saved segment/)
})
