import type { FastifyInstance } from 'fastify'
import { DEFAULT_TIME_ZONE, formatDay, formatInstant, midnightOf } from '../../core/date.js'
import type { SegmentIndex } from '../../segments/segment-index.js'
import type { ValueTypes } from '../../segments/value-types.js'
import type { Store } from '../../storage/store.js'
import { authOf, type Auth } from '../auth.js'
import { success, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'

export interface AttributeRoutesDeps {
  readonly store: Pick<Store, 'getProjectTimeZone'>
  readonly auth: Auth
  readonly now: Clock
  readonly index: SegmentIndex
  /** Path prefix. Default `/v1/user`; the admin API mounts the route per project. */
  readonly base?: string
}

export type AttributeType = 'string' | 'number' | 'boolean' | 'date' | 'mixed'

/** The typed part of a catalog entry: `type`, `shares` of users per kind, and `min`/`max` for numbers and dates. */
export function describeTypes(
  t: ValueTypes,
  timeZone: string,
): {
  type: AttributeType
  shares: Partial<Record<'string' | 'number' | 'boolean' | 'date', number>>
  min: number | string | null
  max: number | string | null
} {
  const held = { string: t.strings, number: t.numbers, boolean: t.booleans, date: t.dates }
  const total = t.strings + t.numbers + t.booleans + t.dates
  const shares: Partial<Record<keyof typeof held, number>> = {}
  for (const [kind, users] of Object.entries(held) as [keyof typeof held, number][]) {
    if (users > 0) shares[kind] = Math.round((users / total) * 10_000) / 10_000
  }
  const kinds = Object.keys(shares) as (keyof typeof held)[]
  const type: AttributeType = kinds.length === 1 ? (kinds[0] as keyof typeof held) : 'mixed'
  if (type === 'number') return { type, shares, min: t.numberMin, max: t.numberMax }
  if (type !== 'date') return { type, shares, min: null, max: null }
  // Bare dates and date-times compare through the bare date's midnight in the project's zone.
  const pick = (instant: number, day: number, earliest: boolean): string => {
    if (!Number.isFinite(day)) return formatInstant(instant)
    if (!Number.isFinite(instant)) return formatDay(day)
    const midnight = midnightOf(timeZone, day)
    return (earliest ? midnight <= instant : midnight >= instant) ? formatDay(day) : formatInstant(instant)
  }
  return { type, shares, min: pick(t.instantMin, t.dayMin, true), max: pick(t.instantMax, t.dayMax, false) }
}

/**
 * `GET /v1/user/attributes`: the project's attribute catalog for segment builders — each attribute
 * with its user count, its detected type (see {@link describeTypes}) and, for attributes with at
 * most 1000 distinct values, the 20 most common.
 */
export function registerAttributeRoutes(
  app: FastifyInstance,
  { store, auth, now, index, base = '/v1/user' }: AttributeRoutesDeps,
): void {
  app.get(`${base}/attributes`, { onRequest: auth.requireScope('profiles:read') }, async (request, reply) => {
    const { projectId } = authOf(request)
    const [catalog, zone] = await Promise.all([index.catalog(projectId), store.getProjectTimeZone(projectId)])
    const timeZone = zone ?? DEFAULT_TIME_ZONE
    const attributes = catalog.attributes.map((a) => ({
      name: a.name,
      users: a.users,
      ...describeTypes(a.types, timeZone),
      distinct_values: a.distinctValues,
      top_values: a.topValues,
    }))
    return reply.send(success(now, { users: catalog.users, time_zone: timeZone, attributes }))
  })
  addMethodNotAllowed(app, now, `${base}/attributes`, ['GET'])
}
