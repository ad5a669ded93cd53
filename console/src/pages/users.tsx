import { useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError, enc, type Profile, type Project, type UserSummary } from '../api.js'
import { ConfirmDialog, EmptyState } from '../components.js'
import { formatCount, formatDateTime } from '../format.js'
import { projectHref } from '../routes.js'

const PAGE = 25

export function UsersPage(props: { project: Project; reloadProjects: () => Promise<void> }) {
  const base = `/projects/${enc(props.project.id)}`
  const [mode, setMode] = useState<'exact' | 'prefix'>('exact')
  const [text, setText] = useState('')
  const [fieldError, setFieldError] = useState<string | null>(null)
  const [profile, setProfile] = useState<Profile | null>(null)
  const [list, setList] = useState<{
    prefix: string
    users: UserSummary[]
    cursors: (string | null)[]
    next: string | null
  } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [deleting, setDeleting] = useState(false)
  const [deleteError, setDeleteError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const profileHeading = useRef<HTMLHeadingElement>(null)

  const loadPage = async (prefix: string, after: string | null, cursors: (string | null)[]) => {
    const params = new URLSearchParams({ prefix, limit: String(PAGE) })
    if (after !== null) params.set('after', after)
    try {
      const page = await api<{ users: UserSummary[]; next_after: string | null }>('GET', `${base}/users?${params}`)
      setList({ prefix, users: page.users, cursors, next: page.next_after })
      setError(null)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    }
  }

  useEffect(() => {
    void loadPage('', null, [null])
  }, [base])

  const open = async (userId: string) => {
    setNotice(null)
    try {
      const found = await api<Profile>('GET', `${base}/users/${enc(userId)}`)
      setProfile(found)
      setFieldError(null)
      requestAnimationFrame(() => profileHeading.current?.focus())
    } catch (e) {
      setProfile(null)
      if (e instanceof ApiError && e.status === 404)
        setFieldError(`No user "${userId}" in this project. Try "Starts with" to search by prefix.`)
      else setFieldError(e instanceof Error ? e.message : String(e))
    }
  }

  const submit = async (e: Event) => {
    e.preventDefault()
    if (mode === 'exact') {
      if (text === '') {
        setFieldError('Enter a user ID.')
        return
      }
      await open(text)
    } else {
      setProfile(null)
      setFieldError(null)
      await loadPage(text, null, [null])
    }
  }

  const remove = async () => {
    if (!profile) return
    try {
      await api('DELETE', `${base}/users/${enc(profile.user_id)}`)
      setNotice(`User "${profile.user_id}" and its attributes were deleted.`)
      setProfile(null)
      setDeleting(false)
      setDeleteError(null)
      await props.reloadProjects()
      if (list) await loadPage(list.prefix, list.cursors[list.cursors.length - 1] ?? null, list.cursors)
    } catch (err) {
      setDeleteError(err instanceof Error ? err.message : String(err))
    }
  }

  const attributes = profile ? Object.entries(profile.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : []

  return (
    <section>
      <h1>Users</h1>
      <form class="card lookup" onSubmit={(e) => void submit(e)} noValidate>
        <div class="field grow">
          <label for="user-id">User ID</label>
          <input
            id="user-id"
            value={text}
            spellcheck={false}
            autocomplete="off"
            aria-invalid={fieldError ? 'true' : undefined}
            aria-describedby={fieldError ? 'user-id-error' : undefined}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </div>
        <fieldset class="field">
          <legend>Match</legend>
          <div class="radios">
            <label class="check">
              <input type="radio" name="match" checked={mode === 'exact'} onChange={() => setMode('exact')} /> Exactly
            </label>
            <label class="check">
              <input type="radio" name="match" checked={mode === 'prefix'} onChange={() => setMode('prefix')} /> Starts
              with
            </label>
          </div>
        </fieldset>
        <div class="field end">
          <button type="submit" class="primary">
            Look up
          </button>
        </div>
        {fieldError ? (
          <p class="error full" id="user-id-error" role="alert">
            {fieldError}
          </p>
        ) : null}
      </form>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      {profile ? (
        <article class="card profile" aria-labelledby="profile-heading">
          <div class="page-head">
            <h2 id="profile-heading" tabIndex={-1} ref={profileHeading} class="mono">
              {profile.user_id}
            </h2>
            <button type="button" class="danger-outline" onClick={() => setDeleting(true)}>
              Delete user
            </button>
          </div>
          <p class="muted">
            Created {formatDateTime(profile.created_at)} · updated {formatDateTime(profile.updated_at)} ·{' '}
            {formatCount(attributes.length)} attributes
          </p>
          {attributes.length === 0 ? (
            <p>This user has no attributes left (each was cleared with an empty value).</p>
          ) : (
            <div class="table-wrap">
              <table>
                <caption class="visually-hidden">Attributes of {profile.user_id}</caption>
                <thead>
                  <tr>
                    <th scope="col">Attribute</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {attributes.map(([name, value]) => (
                    <tr key={name}>
                      <th scope="row" class="mono">
                        {name}
                      </th>
                      <td class="mono wrap">{value}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </article>
      ) : null}
      {deleting && profile ? (
        <ConfirmDialog
          title={`Delete user "${profile.user_id}"?`}
          confirmLabel="Delete user"
          danger
          error={deleteError}
          onConfirm={() => void remove()}
          onCancel={() => setDeleting(false)}
        >
          <p>The user and every attribute it has are erased. A later upload with this ID creates it again.</p>
        </ConfirmDialog>
      ) : null}
      <h2>{list && list.prefix !== '' ? `Users starting with "${list.prefix}"` : 'All users'}</h2>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {list === null ? (
        <p aria-busy="true">Loading…</p>
      ) : list.users.length === 0 ? (
        list.prefix === '' ? (
          <EmptyState title="No users yet">
            <p>
              Users appear here after the first upload. The{' '}
              <a href={projectHref(props.project.id, 'integration')}>Integration page</a> has a key and code to send
              one.
            </p>
          </EmptyState>
        ) : (
          <EmptyState title="No user ID starts with that">
            <p>IDs are matched exactly, case-sensitive. Try a shorter prefix.</p>
          </EmptyState>
        )
      ) : (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Users, in ID order</caption>
              <thead>
                <tr>
                  <th scope="col">User ID</th>
                  <th scope="col">Created</th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {list.users.map((user) => (
                  <tr key={user.user_id}>
                    <td>
                      <button type="button" class="link mono" onClick={() => void open(user.user_id)}>
                        {user.user_id}
                      </button>
                    </td>
                    <td>{formatDateTime(user.created_at)}</td>
                    <td>{formatDateTime(user.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="pager">
            <button
              type="button"
              disabled={list.cursors.length <= 1}
              onClick={() => {
                const cursors = list.cursors.slice(0, -1)
                void loadPage(list.prefix, cursors[cursors.length - 1] ?? null, cursors)
              }}
            >
              Previous page
            </button>
            <span class="muted">Page {formatCount(list.cursors.length)}</span>
            <button
              type="button"
              disabled={list.next === null}
              onClick={() => void loadPage(list.prefix, list.next, [...list.cursors, list.next])}
            >
              Next page
            </button>
          </div>
        </>
      )}
    </section>
  )
}
