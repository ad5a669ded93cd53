import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import { api, ApiError, type Project } from '../api.js'
import { EmptyState, useAutoFocus } from '../components.js'
import { formatCount, formatDateTime } from '../format.js'
import { projectHref } from '../routes.js'

export function ProjectsPage(props: { projects: Project[]; reload: () => Promise<void> }) {
  const [creating, setCreating] = useState(false)
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [renaming, setRenaming] = useState<string | null>(null)

  const create = async (e: Event) => {
    e.preventDefault()
    if (name.trim() === '') {
      setError('Enter a name for the project.')
      return
    }
    try {
      const created = await api<Project | { project: Project }>('POST', '/projects', { body: { name: name.trim() } })
      const project = 'project' in created ? created.project : created
      setName('')
      setCreating(false)
      setError(null)
      await props.reload()
      location.hash = projectHref(project.id, 'integration')
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err))
    }
  }

  return (
    <section>
      <div class="page-head">
        <h1>Projects</h1>
        {!creating ? (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New project
          </button>
        ) : null}
      </div>
      {creating ? (
        <form class="card stack" onSubmit={(e) => void create(e)} noValidate>
          <label for="project-name">Project name</label>
          <AutoFocusInput
            id="project-name"
            value={name}
            maxLength={100}
            aria-invalid={error ? 'true' : undefined}
            aria-describedby={error ? 'project-name-error' : undefined}
            onInput={(e) => setName(e.currentTarget.value)}
          />
          {error ? (
            <p class="error" id="project-name-error" role="alert">
              {error}
            </p>
          ) : null}
          <div class="actions">
            <button type="submit" class="primary">
              Create project
            </button>
            <button
              type="button"
              onClick={() => {
                setCreating(false)
                setError(null)
              }}
            >
              Cancel
            </button>
          </div>
        </form>
      ) : null}
      {props.projects.length === 0 ? (
        <EmptyState title="No projects yet">
          <p>
            A project holds one company's or app's users and its API keys. Press <strong>New project</strong> to create
            one; its Integration page then gives you a key and ready-to-paste upload code.
          </p>
        </EmptyState>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Your projects</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="num">
                  Users
                </th>
                <th scope="col">Last upload</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {props.projects.map((project) =>
                renaming === String(project.id) ? (
                  <RenameRow
                    key={project.id}
                    project={project}
                    onDone={async () => {
                      setRenaming(null)
                      await props.reload()
                    }}
                  />
                ) : (
                  <tr key={project.id}>
                    <td>
                      <a href={projectHref(project.id, 'integration')}>{project.name}</a>
                    </td>
                    <td class="num">{formatCount(project.users)}</td>
                    <td>{project.last_upload_at ? formatDateTime(project.last_upload_at) : 'No upload yet'}</td>
                    <td>{formatDateTime(project.created_at)}</td>
                    <td class="row-actions">
                      <button
                        type="button"
                        aria-label={`Rename ${project.name}`}
                        onClick={() => setRenaming(String(project.id))}
                      >
                        Rename
                      </button>
                    </td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

function RenameRow(props: { project: Project; onDone: () => Promise<void> }) {
  const [name, setName] = useState(props.project.name)
  const [error, setError] = useState<string | null>(null)
  const id = `rename-${props.project.id}`
  const save = async (e: Event) => {
    e.preventDefault()
    if (name.trim() === '') {
      setError('Enter a name.')
      return
    }
    try {
      await api('PATCH', `/projects/${encodeURIComponent(props.project.id)}`, { body: { name: name.trim() } })
      await props.onDone()
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err))
    }
  }
  return (
    <tr>
      <td colSpan={5}>
        <form class="inline-form" onSubmit={(e) => void save(e)} noValidate>
          <label for={id}>New name for {props.project.name}</label>
          <AutoFocusInput
            id={id}
            value={name}
            aria-invalid={error ? 'true' : undefined}
            aria-describedby={error ? `${id}-error` : undefined}
            onInput={(e) => setName(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') void props.onDone()
            }}
          />
          <button type="submit" class="primary">
            Save
          </button>
          <button type="button" onClick={() => void props.onDone()}>
            Cancel
          </button>
          {error ? (
            <p class="error" id={`${id}-error`} role="alert">
              {error}
            </p>
          ) : null}
        </form>
      </td>
    </tr>
  )
}

function AutoFocusInput(props: JSX.IntrinsicElements['input']) {
  const ref = useAutoFocus<HTMLInputElement>()
  return <input ref={ref} {...props} />
}
