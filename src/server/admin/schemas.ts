import { MAX_GRACE_SECONDS, REQUEST_LOG_PAGE, USER_PAGE } from '../../core/admin.js'
import { SCOPES } from '../../core/scopes.js'

// The admin API's route schemas. They DOCUMENT (they become /openapi.json through
// @fastify/swagger); they never validate or serialize: the app installs a pass-through validator and
// JSON.stringify as serializer, and the checks in src/core decide what is accepted.

type Schema = Record<string, unknown>

const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) })
const nullable = (s: Schema): Schema => ({ ...s, type: [s['type'] as string, 'null'] })
const time = (description?: string): Schema => ({ ...str(description), format: 'date-time' })
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
})
const arrayOf = (items: Schema): Schema => ({ type: 'array', items })

/** The failure body every error shares (as /v1). */
export const ERROR_SCHEMA: Schema = {
  type: 'object',
  description: 'Failure: msg says what is wrong; errors (400s) lists every problem with its path',
  properties: {
    msg: str(),
    timestamp: { type: 'integer', description: 'Unix seconds' },
    errors: arrayOf(obj({ code: str(), path: str('the offending input, e.g. name or values[3][1]'), message: str() })),
  },
  required: ['msg', 'timestamp'],
}

const errors = (...statuses: number[]): Record<string, Schema> =>
  Object.fromEntries(statuses.map((s) => [String(s), ERROR_SCHEMA]))

const SESSION = obj({
  password_set: { type: 'boolean' },
  signed_in: { type: 'boolean' },
  csrf_token: nullable(str('send it as X-CSRF-Token on every state-changing request made with the cookie')),
})

export const PROJECT = obj({
  id: { type: 'integer' },
  name: str(),
  created_at: time(),
  users: { type: 'integer', description: 'profiles stored' },
  last_upload_at: nullable(time('last successful upload (from the request log)')),
})

const PROJECT_WITH_ZONE = obj({
  ...(PROJECT['properties'] as Record<string, Schema>),
  time_zone: str('IANA time zone of the project (default UTC)'),
})

export const KEY = obj({
  id: str('public id, key_…'),
  label: str(),
  scopes: arrayOf({ type: 'string', enum: [...SCOPES] }),
  created_at: time(),
  last_used_at: nullable(time()),
  revoked_at: nullable(time()),
  expires_at: nullable(time('set by rotation: the key stops working then')),
  state: { type: 'string', enum: ['active', 'expiring', 'revoked', 'expired'] },
})

const REQUEST = obj({
  id: { type: 'integer', description: 'increasing; use it for before/after' },
  time: time(),
  method: str(),
  path: str(),
  key_id: nullable(str()),
  key_label: nullable(str()),
  request_id: str(),
  status: { type: 'integer' },
  duration_ms: { type: 'number' },
  users_created: nullable({ type: 'integer' }),
  users_updated: nullable({ type: 'integer' }),
  error: nullable(str('the exact msg of a failure, with its values[i][j] place')),
  dry_run: { type: 'boolean' },
})

const PROJECT_PARAMS = obj({ project_id: str('the project id') })
const KEY_PARAMS = obj({ project_id: str(), key_id: str() })
const tags = ['admin']
const security = [{ adminSession: [] }, { adminToken: [] }]

const route = (summary: string, parts: Schema): Schema => ({ tags, summary, security, ...parts })

export const ADMIN_SCHEMAS = {
  getSession: {
    tags,
    summary: 'Sign-in state of the console (no auth needed)',
    response: { 200: SESSION },
  },
  signIn: {
    tags,
    summary: 'Sign in with the admin password: sets the tb_session cookie',
    body: obj({ password: str() }),
    response: { 200: SESSION, ...errors(400, 401, 409, 429) },
  },
  signOut: {
    tags,
    summary: 'Sign out: the session is invalidated on the server',
    response: { 200: SESSION, ...errors(403) },
  },
  listProjects: route('List projects', {
    response: { 200: obj({ projects: arrayOf(PROJECT) }), ...errors(401) },
  }),
  createProject: route('Create a project', {
    body: obj({ name: str() }),
    response: { 201: PROJECT, ...errors(400, 401, 403, 409) },
  }),
  getProject: route('One project, with its time zone', {
    params: PROJECT_PARAMS,
    response: { 200: PROJECT_WITH_ZONE, ...errors(401, 404) },
  }),
  renameProject: route(
    'Rename a project or set its time zone (IANA name: bare dates and whole-day units of segments)',
    {
      params: PROJECT_PARAMS,
      body: obj({ name: str(), time_zone: str('IANA time zone name, e.g. Asia/Tokyo') }, []),
      response: { 200: PROJECT_WITH_ZONE, ...errors(400, 401, 403, 404, 409) },
    },
  ),
  listKeys: route("A project's API keys (never their secrets)", {
    params: PROJECT_PARAMS,
    response: { 200: obj({ keys: arrayOf(KEY) }), ...errors(401, 404) },
  }),
  createKey: route('Create an API key: the secret is in this answer only', {
    params: PROJECT_PARAMS,
    body: obj({ label: str(), scopes: arrayOf({ type: 'string', enum: [...SCOPES] }) }, []),
    response: { 201: obj({ key: KEY, secret: str('tbk_…, shown once') }), ...errors(400, 401, 403, 404) },
  }),
  revokeKey: route('Revoke a key: refused from the next request on', {
    params: KEY_PARAMS,
    response: { 200: KEY, ...errors(401, 403, 404, 409) },
  }),
  rotateKey: route('Rotate a key: a new key now, the old one works until expires_at', {
    params: KEY_PARAMS,
    body: obj({ grace_seconds: { type: 'integer', minimum: 0, maximum: MAX_GRACE_SECONDS } }),
    response: { 201: obj({ key: KEY, secret: str(), previous: KEY }), ...errors(400, 401, 403, 404, 409) },
  }),
  keyEvents: route('Key events (created, rotated, revoked), newest first', {
    params: PROJECT_PARAMS,
    response: {
      200: obj({
        events: arrayOf(
          obj({
            id: { type: 'integer' },
            key_id: str(),
            event: { type: 'string', enum: ['created', 'rotated', 'revoked'] },
            at: time(),
            actor: str('session, token:tok_… or cli'),
            detail: str(),
          }),
        ),
      }),
      ...errors(401, 404),
    },
  }),
  requests: route('The request log of /v1 calls, newest first', {
    params: PROJECT_PARAMS,
    querystring: obj(
      {
        status: { type: 'string', enum: ['2xx', '4xx', '5xx'] },
        key_id: str(),
        before: { type: 'integer', description: 'older than this id (paging back)' },
        after: { type: 'integer', description: 'newer than this id (polling)' },
        limit: { type: 'integer', minimum: 1, maximum: REQUEST_LOG_PAGE.max, default: REQUEST_LOG_PAGE.default },
      },
      [],
    ),
    response: {
      200: obj({ requests: arrayOf(REQUEST), next_before: nullable({ type: 'integer' }) }),
      ...errors(400, 401, 404),
    },
  }),
  listUsers: route('Users by id prefix, in id order', {
    params: PROJECT_PARAMS,
    querystring: obj(
      {
        prefix: str(),
        after: str('the next_after of the previous page'),
        limit: { type: 'integer', minimum: 1, maximum: USER_PAGE.max, default: USER_PAGE.default },
      },
      [],
    ),
    response: {
      200: obj({
        users: arrayOf(obj({ user_id: str(), created_at: time(), updated_at: time() })),
        next_after: nullable(str()),
      }),
      ...errors(400, 401, 404),
    },
  }),
  getUser: route('One user with every attribute', {
    params: obj({ project_id: str(), user_id: str() }),
    response: {
      200: obj({
        user_id: str(),
        attributes: { type: 'object', additionalProperties: { type: 'string' } },
        created_at: time(),
        updated_at: time(),
      }),
      ...errors(401, 404),
    },
  }),
  deleteUser: route('Delete a user and its attributes', {
    params: obj({ project_id: str(), user_id: str() }),
    response: { 200: obj({ deleted: { type: 'boolean' } }), ...errors(401, 403, 404) },
  }),
} as const
