import type { FastifyInstance, FastifyRequest } from 'fastify'
import { parseNewKeyBody, parseProjectBody, parseProjectPatch, parseRotateBody } from '../../core/admin.js'
import { TraitbaseError, validationError } from '../../core/errors.js'
import { generateApiKey } from '../../storage/api-keys.js'
import type { KeyRecord, Project, Store } from '../../storage/store.js'
import type { Clock } from '../envelope.js'
import { keyState, presentKey, presentKeyEvent, presentProject } from './present.js'
import { ADMIN_SCHEMAS } from './schemas.js'

export interface ProjectRoutesDeps {
  readonly store: Store
  readonly now: Clock
}

type ProjectParams = { Params: { project_id: string } }
type KeyParams = { Params: { project_id: string; key_id: string } }

/** `:project_id` as a project, or 404 (a non-number names nothing). */
export async function projectOf(store: Store, request: FastifyRequest): Promise<Project> {
  const raw = (request.params as { project_id?: string }).project_id ?? ''
  const project = /^[1-9][0-9]{0,9}$/.test(raw) ? await store.getProject(Number(raw)) : undefined
  if (project === undefined)
    throw new TraitbaseError('NOT_FOUND', `No project with id ${JSON.stringify(raw.slice(0, 40))}`)
  return project
}

function actorOf(request: FastifyRequest): string {
  return request.admin?.actor ?? 'unknown'
}

/** Projects (list, create, rename) and their keys (list, create, revoke, rotate, events). */
export function registerProjectRoutes(app: FastifyInstance, { store, now }: ProjectRoutesDeps): void {
  const findKey = async (project: Project, keyId: string): Promise<KeyRecord> => {
    const key = await store.getKey(keyId)
    if (key === undefined || key.projectId !== project.id) {
      throw new TraitbaseError('NOT_FOUND', 'No key with this id in this project')
    }
    return key
  }

  app.get('/admin/api/projects', { schema: ADMIN_SCHEMAS.listProjects }, async () => ({
    projects: (await store.listProjects()).map((p) => presentProject(p)),
  }))

  app.post('/admin/api/projects', { schema: ADMIN_SCHEMAS.createProject }, async (request, reply) => {
    const parsed = parseProjectBody(request.body)
    if (!parsed.ok) throw validationError(parsed.error)
    const project = await store.createProject(parsed.value.name)
    return reply.code(201).send(presentProject(project))
  })

  app.get<ProjectParams>('/admin/api/projects/:project_id', { schema: ADMIN_SCHEMAS.getProject }, async (request) => {
    const project = await projectOf(store, request)
    const summary = (await store.listProjects()).find((p) => p.id === project.id)
    return presentProject(summary ?? project, await store.getProjectTimeZone(project.id))
  })

  app.patch<ProjectParams>(
    '/admin/api/projects/:project_id',
    { schema: ADMIN_SCHEMAS.renameProject },
    async (request) => {
      const project = await projectOf(store, request)
      const parsed = parseProjectPatch(request.body)
      if (!parsed.ok) throw validationError(parsed.error)
      // The zone first: it is the change that can be refused (an unknown name), and nothing is changed then.
      if (parsed.value.timeZone !== undefined) await store.setProjectTimeZone(project.id, parsed.value.timeZone)
      if (parsed.value.name !== undefined) await store.renameProject(project.id, parsed.value.name)
      const summary = (await store.listProjects()).find((p) => p.id === project.id)
      if (summary === undefined) throw new TraitbaseError('NOT_FOUND', 'The project was deleted meanwhile')
      return presentProject(summary, await store.getProjectTimeZone(project.id))
    },
  )

  app.get<ProjectParams>(
    '/admin/api/projects/:project_id/keys',
    { schema: ADMIN_SCHEMAS.listKeys },
    async (request) => {
      const project = await projectOf(store, request)
      const at = now()
      return { keys: (await store.listKeys(project.id)).map((k) => presentKey(k, at)) }
    },
  )

  app.post<ProjectParams>(
    '/admin/api/projects/:project_id/keys',
    { schema: ADMIN_SCHEMAS.createKey },
    async (request, reply) => {
      const project = await projectOf(store, request)
      const parsed = parseNewKeyBody(request.body)
      if (!parsed.ok) throw validationError(parsed.error)
      const { secret, hash } = generateApiKey()
      const key = await store.createKey({ projectId: project.id, ...parsed.value, hash })
      await store.addKeyEvent({ projectId: project.id, keyId: key.id, event: 'created', actor: actorOf(request) })
      return reply.code(201).send({ key: presentKey(key, now()), secret })
    },
  )

  app.post<KeyParams>(
    '/admin/api/projects/:project_id/keys/:key_id/revoke',
    { schema: ADMIN_SCHEMAS.revokeKey },
    async (request) => {
      const project = await projectOf(store, request)
      const key = await findKey(project, request.params.key_id)
      if (!(await store.revokeKey(key.id))) throw new TraitbaseError('CONFLICT', 'This key is revoked already')
      await store.addKeyEvent({ projectId: project.id, keyId: key.id, event: 'revoked', actor: actorOf(request) })
      return presentKey((await store.getKey(key.id)) as KeyRecord, now())
    },
  )

  app.post<KeyParams>(
    '/admin/api/projects/:project_id/keys/:key_id/rotate',
    { schema: ADMIN_SCHEMAS.rotateKey },
    async (request, reply) => {
      const project = await projectOf(store, request)
      const parsed = parseRotateBody(request.body)
      if (!parsed.ok) throw validationError(parsed.error)
      const old = await findKey(project, request.params.key_id)
      const state = keyState(old, now())
      if (state === 'revoked' || state === 'expired') {
        throw new TraitbaseError('CONFLICT', `This key is ${state}: create a new key instead`)
      }
      const { secret, hash } = generateApiKey()
      const expiresAt = new Date(now() + parsed.value.graceSeconds * 1000)
      const rotated = await store.rotateKey(
        project.id,
        old.id,
        { projectId: project.id, label: old.label, scopes: old.scopes, hash },
        expiresAt,
      )
      if (rotated === undefined) throw new TraitbaseError('NOT_FOUND', 'No key with this id in this project')
      const actor = actorOf(request)
      await store.addKeyEvent({
        projectId: project.id,
        keyId: old.id,
        event: 'rotated',
        actor,
        detail: `replaced by ${rotated.key.id}; stops working at ${rotated.previous.expiresAt ?? '?'}`,
      })
      await store.addKeyEvent({
        projectId: project.id,
        keyId: rotated.key.id,
        event: 'created',
        actor,
        detail: `rotation of ${old.id}`,
      })
      const at = now()
      return reply
        .code(201)
        .send({ key: presentKey(rotated.key, at), secret, previous: presentKey(rotated.previous, at) })
    },
  )

  app.get<ProjectParams>(
    '/admin/api/projects/:project_id/key-events',
    { schema: ADMIN_SCHEMAS.keyEvents },
    async (request) => {
      const project = await projectOf(store, request)
      return { events: (await store.listKeyEvents(project.id, 200)).map(presentKeyEvent) }
    },
  )
}
