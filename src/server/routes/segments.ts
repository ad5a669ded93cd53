import { Readable } from 'node:stream'
import Negotiator from 'negotiator'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { cursorScope, decodeCursorState, encodeCursor, type CursorState } from '../../core/cursor.js'
import { DEFAULT_TIME_ZONE } from '../../core/date.js'
import { TraitbaseError, validationError } from '../../core/errors.js'
import { MAX_FIELD_NAME, USER_ID_FIELD } from '../../core/limits.js'
import type { Issue } from '../../core/result.js'
import {
  hasDates,
  parseCondition,
  parseLimit,
  parseSegmentQuery,
  resolveDates,
  type Condition,
} from '../../core/segment.js'
import { fitsCodePoints, sortedByKey } from '../../core/text.js'
import type { SegmentIndex } from '../../segments/segment-index.js'
import type { Profile, SavedSegment, Store } from '../../storage/store.js'
import { authOf, type Auth } from '../auth.js'
import { success, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'
import { describeJsonValue, isJsonObject, objectBody } from '../../core/json-value.js'

export interface SegmentRoutesDeps {
  readonly store: Store
  readonly auth: Auth
  readonly now: Clock
  /** The process's segment index (shared with the attribute catalog route). */
  readonly index: SegmentIndex
  /** Path prefix of the routes. Default `/v1/user`; the admin API mounts them per project. */
  readonly base?: string
}

/** Longest saved-segment name, in code points. */
export const MAX_SEGMENT_NAME = 200
/** Most columns an export may name in `fields`. */
export const MAX_EXPORT_FIELDS = 200
/** Profiles read from the store per export step: memory stays at one page whatever the result size. */
const EXPORT_PAGE = 1000

type Format = 'csv' | 'ndjson'

/** Checks `{"name": …, "where": …}` for saving a segment. */
function parseSavedSegmentBody(input: unknown): { name: string; where: unknown } {
  const issues: Issue[] = []
  const body = objectBody(input, ['name', 'where'], issues)
  if (body === undefined) throw validationError(issues)
  const name = body['name']
  if (name === undefined)
    issues.push({ code: 'required', path: 'name', message: 'is required: a label for the segment' })
  else if (typeof name !== 'string') {
    issues.push({ code: 'invalid_type', path: 'name', message: `must be a string, got ${describeJsonValue(name)}` })
  } else if (name.trim() === '') issues.push({ code: 'too_small', path: 'name', message: 'must not be empty' })
  else if (!fitsCodePoints(name, MAX_SEGMENT_NAME)) {
    issues.push({ code: 'too_big', path: 'name', message: `is longer than ${MAX_SEGMENT_NAME} characters` })
  } else if (!name.isWellFormed()) {
    issues.push({ code: 'invalid_string', path: 'name', message: 'contains a lone UTF-16 surrogate' })
  }
  if (body['where'] === undefined) {
    issues.push({ code: 'required', path: 'where', message: 'is required: the condition members must match' })
  } else {
    const parsed = parseCondition(body['where'])
    if (!parsed.ok) issues.push(...parsed.error)
  }
  if (issues.length > 0) throw validationError(issues)
  return { name: name as string, where: body['where'] }
}

/** A saved segment's stored `where`, parsed; a 500 would be wrong for old data, so it is a 409. */
function whereOf(segment: SavedSegment): Condition {
  const parsed = parseCondition(segment.where)
  if (!parsed.ok) {
    throw new TraitbaseError('CONFLICT', `Saved segment ${segment.id} has a condition this server no longer accepts`, {
      issues: parsed.error,
    })
  }
  return parsed.value
}

function readCursor(cursor: string | undefined, scope: string): CursorState | undefined {
  if (cursor === undefined || cursor === '') return undefined
  const decoded = decodeCursorState(cursor, scope)
  if (!decoded.ok) throw validationError(decoded.error)
  return decoded.value
}

/**
 * Date conditions resolved for one request: `now` read once (or taken from the cursor of a walk),
 * and the project's time zone read once, only when some condition has a date leaf.
 */
function dateResolver(store: Store, projectId: number): (where: Condition, now: number) => Promise<Condition> {
  let zone: Promise<string> | undefined
  return async (where, now) => {
    if (!hasDates(where)) return where
    zone ??= store.getProjectTimeZone(projectId).then((z) => z ?? DEFAULT_TIME_ZONE)
    return resolveDates(where, { now, timeZone: await zone })
  }
}

/** `?fields=a,b` (or repeated `fields`), plus a body array for the POST export. */
function parseFields(query: unknown, bodyFields: unknown): string[] | undefined {
  const issues: Issue[] = []
  const names: string[] = []
  let given = false
  const raw = isJsonObject(query) ? query['fields'] : undefined
  if (raw !== undefined) {
    given = true
    for (const part of Array.isArray(raw) ? raw : [raw]) {
      if (typeof part === 'string') names.push(...part.split(','))
    }
  }
  if (bodyFields !== undefined) {
    given = true
    if (!Array.isArray(bodyFields) || !bodyFields.every((f) => typeof f === 'string')) {
      issues.push({ code: 'invalid_type', path: 'fields', message: 'must be an array of attribute names' })
    } else names.push(...(bodyFields as string[]))
  }
  if (!given) return undefined
  const out: string[] = []
  for (const name of names) {
    if (name === '') issues.push({ code: 'too_small', path: 'fields', message: 'names must not be empty' })
    else if (!fitsCodePoints(name, MAX_FIELD_NAME)) {
      issues.push({
        code: 'too_big',
        path: 'fields',
        message: `"${name.slice(0, 60)}" is longer than ${MAX_FIELD_NAME}`,
      })
    } else if (name !== USER_ID_FIELD && !out.includes(name)) out.push(name)
  }
  if (out.length > MAX_EXPORT_FIELDS) {
    issues.push({
      code: 'too_big',
      path: 'fields',
      message: `names ${out.length} fields; the limit is ${MAX_EXPORT_FIELDS}`,
    })
  }
  if (issues.length > 0) throw validationError(issues)
  return out
}

/** What an export can be, by media type, in the order preferred when the client likes several equally. */
const EXPORT_TYPES: Readonly<Record<string, Format>> = {
  'text/csv': 'csv',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
}

/**
 * CSV unless the client prefers NDJSON, by `Accept` with its q-values and wildcards (RFC 9110
 * §12.5.1, through `negotiator`); no header means CSV; 406 when it accepts neither.
 */
function negotiate(request: FastifyRequest): Format {
  if (request.headers.accept === undefined || request.headers.accept.trim() === '') return 'csv'
  const best = new Negotiator(request.raw).mediaType(Object.keys(EXPORT_TYPES))
  const format = best === undefined ? undefined : EXPORT_TYPES[best.toLowerCase()]
  if (format === undefined) {
    throw new TraitbaseError('NOT_ACCEPTABLE', 'Export is available as text/csv or application/x-ndjson')
  }
  return format
}

/** RFC 4180 field: quoted when it holds a comma, quote, CR/LF or leading/trailing space. */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}

/**
 * Every matching profile, page by page through the store's SQL path in user_id order. A generator
 * pulled by a Readable: the next page is read only when the socket has taken the previous one.
 */
async function* exportLines(
  store: Store,
  projectId: number,
  where: Condition,
  format: Format,
  columns: readonly string[] | undefined,
): AsyncGenerator<string> {
  if (format === 'csv') yield [USER_ID_FIELD, ...(columns ?? [])].map(csvField).join(',') + '\r\n'
  let afterUserId: string | undefined
  for (;;) {
    const page: Profile[] = await store.scanProfiles(projectId, {
      where,
      limit: EXPORT_PAGE,
      ...(afterUserId === undefined ? {} : { afterUserId }),
    })
    let chunk = ''
    for (const p of page) {
      if (format === 'csv') {
        chunk += csvField(p.userId)
        for (const c of columns ?? [])
          chunk += ',' + csvField(Object.hasOwn(p.attributes, c) ? (p.attributes[c] as string) : '')
        chunk += '\r\n'
      } else {
        let attributes: Record<string, string> = p.attributes
        if (columns !== undefined) {
          attributes = Object.create(null) as Record<string, string>
          for (const c of columns) if (Object.hasOwn(p.attributes, c)) attributes[c] = p.attributes[c] as string
        }
        attributes = sortedByKey(attributes)
        chunk += JSON.stringify({ user_id: p.userId, attributes }) + '\n'
      }
    }
    if (chunk !== '') yield chunk
    if (page.length < EXPORT_PAGE) return
    afterUserId = page[page.length - 1]?.userId
  }
}

/**
 * Segment routes: ad-hoc query and export, saved segments (CRUD, members, export). Counts and pages
 * come from the in-memory index; exports stream from the store.
 */
export function registerSegmentRoutes(
  app: FastifyInstance,
  { store, auth, now, index, base = '/v1/user' }: SegmentRoutesDeps,
): void {
  const canRead = auth.requireScope('profiles:read')
  const canWrite = auth.requireScope('profiles:write')

  const page = async (
    reply: FastifyReply,
    projectId: number,
    where: Condition,
    limit: number,
    cursor: string | undefined,
  ) => {
    const scope = cursorScope(projectId, where)
    const state = readCursor(cursor, scope)
    // One "now" for a whole walk: the first page's, carried in the cursor (a k2 cursor has none).
    const at = state?.now ?? now()
    const resolved = await dateResolver(store, projectId)(where, at)
    const answer = await index.query(projectId, resolved, limit, state?.afterUserId)
    const timed = hasDates(where) ? at : undefined
    // Which path answered: `database` while the project's index loads (or does not fit the budget).
    reply.header('x-segment-source', answer.source)
    return {
      count: answer.count,
      user_ids: answer.userIds,
      next_cursor: answer.nextAfter === null ? null : encodeCursor(answer.nextAfter, scope, timed),
    }
  }

  const present = (segment: SavedSegment, count: number | null) => ({
    id: segment.id,
    name: segment.name,
    where: segment.where,
    count,
    created_at: segment.createdAt,
    updated_at: segment.updatedAt,
  })

  const countOf = async (projectId: number, segment: SavedSegment): Promise<number | null> => {
    const parsed = parseCondition(segment.where)
    if (!parsed.ok) return null
    return index.count(projectId, await dateResolver(store, projectId)(parsed.value, now()))
  }

  const findSegment = async (projectId: number, id: string): Promise<SavedSegment> => {
    const segment = await store.getSegment(projectId, id)
    if (segment === undefined) throw new TraitbaseError('NOT_FOUND', 'No saved segment with this id in this project')
    return segment
  }

  const sendExport = async (
    request: FastifyRequest,
    reply: FastifyReply,
    where: Condition,
    bodyFields: unknown,
    name: string,
  ) => {
    const { projectId } = authOf(request)
    const format = negotiate(request)
    let columns = parseFields(request.query, bodyFields)
    const type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8'
    const extension = format === 'csv' ? 'csv' : 'ndjson'
    reply
      .type(type)
      .header('content-disposition', `attachment; filename="${name}.${extension}"`)
      .header('cache-control', 'no-store')
    // HEAD: the headers a GET would get, without reading a single profile.
    if (request.method === 'HEAD') return reply.send()
    if (columns === undefined && format === 'csv') {
      columns = (await index.catalog(projectId)).attributes.map((a) => a.name)
    }
    // Resolved once: every page of the export is read with the same "now".
    const resolved = await dateResolver(store, projectId)(where, now())
    return reply.send(Readable.from(exportLines(store, projectId, resolved, format, columns), { objectMode: false }))
  }

  app.post(`${base}/segments/query`, { onRequest: canRead }, async (request, reply) => {
    const { projectId } = authOf(request)
    const parsed = parseSegmentQuery(request.body)
    if (!parsed.ok) throw validationError(parsed.error)
    const { where, limit, cursor } = parsed.value
    return reply.send(success(now, await page(reply, projectId, where, limit, cursor)))
  })
  addMethodNotAllowed(app, now, `${base}/segments/query`, ['POST'])

  app.post(`${base}/segments/export`, { onRequest: canRead }, async (request, reply) => {
    const issues: Issue[] = []
    const body = objectBody(request.body, ['where', 'fields'], issues)
    if (body === undefined) throw validationError(issues)
    const parsed =
      body['where'] === undefined
        ? ({ ok: false, error: [{ code: 'required', path: 'where', message: 'is required' }] } as const)
        : parseCondition(body['where'])
    if (!parsed.ok) issues.push(...parsed.error)
    if (issues.length > 0 || !parsed.ok) throw validationError(issues)
    return sendExport(request, reply, parsed.value, body['fields'], 'segment')
  })
  addMethodNotAllowed(app, now, `${base}/segments/export`, ['POST'])

  app.post(`${base}/segments`, { onRequest: canWrite }, async (request, reply) => {
    const { projectId } = authOf(request)
    const { name, where } = parseSavedSegmentBody(request.body)
    const segment = await store.createSegment(projectId, name, where)
    return reply.code(201).send(success(now, present(segment, await countOf(projectId, segment))))
  })
  app.get(`${base}/segments`, { onRequest: canRead }, async (request, reply) => {
    const { projectId } = authOf(request)
    const segments = await store.listSegments(projectId)
    // One catch-up with the change feed for the whole list, then every count from memory.
    const wheres = segments.map((s) => parseCondition(s.where))
    const resolve = dateResolver(store, projectId)
    const at = now()
    const resolved = await Promise.all(wheres.flatMap((w) => (w.ok ? [resolve(w.value, at)] : [])))
    const counts = await index.countMany(projectId, resolved)
    let next = 0
    const out = segments.map((s, i) => present(s, wheres[i]?.ok === true ? (counts[next++] as number) : null))
    return reply.send(success(now, { segments: out }))
  })
  addMethodNotAllowed(app, now, `${base}/segments`, ['GET', 'POST'])

  app.get<{ Params: { id: string } }>(`${base}/segments/:id`, { onRequest: canRead }, async (request, reply) => {
    const { projectId } = authOf(request)
    const segment = await findSegment(projectId, request.params.id)
    return reply.send(success(now, present(segment, await countOf(projectId, segment))))
  })
  app.put<{ Params: { id: string } }>(`${base}/segments/:id`, { onRequest: canWrite }, async (request, reply) => {
    const { projectId } = authOf(request)
    const { name, where } = parseSavedSegmentBody(request.body)
    const segment = await store.updateSegment(projectId, request.params.id, name, where)
    if (segment === undefined) throw new TraitbaseError('NOT_FOUND', 'No saved segment with this id in this project')
    return reply.send(success(now, present(segment, await countOf(projectId, segment))))
  })
  app.delete<{ Params: { id: string } }>(`${base}/segments/:id`, { onRequest: canWrite }, async (request, reply) => {
    const { projectId } = authOf(request)
    if (!(await store.deleteSegment(projectId, request.params.id))) {
      throw new TraitbaseError('NOT_FOUND', 'No saved segment with this id in this project')
    }
    return reply.send(success(now))
  })
  addMethodNotAllowed(app, now, `${base}/segments/:id`, ['GET', 'PUT', 'DELETE'])

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string } }>(
    `${base}/segments/:id/users`,
    { onRequest: canRead },
    async (request, reply) => {
      const { projectId } = authOf(request)
      const issues: Issue[] = []
      const limit = parseLimit(request.query.limit, 'limit', issues, true)
      const cursor = request.query.cursor
      if (cursor !== undefined && typeof cursor !== 'string') {
        issues.push({ code: 'invalid_type', path: 'cursor', message: 'must be given once' })
      }
      if (issues.length > 0) throw validationError(issues)
      const segment = await findSegment(projectId, request.params.id)
      return reply.send(success(now, await page(reply, projectId, whereOf(segment), limit, cursor)))
    },
  )
  addMethodNotAllowed(app, now, `${base}/segments/:id/users`, ['GET'])

  app.get<{ Params: { id: string } }>(`${base}/segments/:id/export`, { onRequest: canRead }, async (request, reply) => {
    const { projectId } = authOf(request)
    const segment = await findSegment(projectId, request.params.id)
    return sendExport(request, reply, whereOf(segment), undefined, segment.id)
  })
  addMethodNotAllowed(app, now, `${base}/segments/:id/export`, ['GET'])
}
