import { render } from 'preact'
import { useCallback, useEffect, useState } from 'preact/hooks'
import { api, ApiError, onSignedOut, setCsrfToken, type Project, type Session } from './api.js'
import { ProjectsPage } from './pages/projects.js'
import { SignInPage, NoPasswordPage } from './pages/sign-in.js'
import { IntegrationPage } from './pages/integration.js'
import { UsersPage } from './pages/users.js'
import { AttributesPage } from './pages/attributes.js'
import { SegmentsPage } from './pages/segments.js'
import { projectHref } from './routes.js'
import './style.css'

/** Routes live in the hash (#/projects/ID/integration): one static index.html serves them all. */
export type Route =
  | { page: 'projects' }
  | { page: 'integration' | 'users' | 'attributes' | 'segments'; projectId: string }
  | { page: 'not-found' }

export const TABS = [
  { page: 'integration', label: 'Integration' },
  { page: 'users', label: 'Users' },
  { page: 'attributes', label: 'Attributes' },
  { page: 'segments', label: 'Segments' },
] as const

function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'projects')) return { page: 'projects' }
  if (parts[0] === 'projects' && parts.length === 3 && parts[1] !== undefined) {
    const tab = TABS.find((t) => t.page === parts[2])
    if (tab) return { page: tab.page, projectId: parts[1] }
  }
  return { page: 'not-found' }
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash))
  useEffect(() => {
    const onChange = () => setRoute(parseHash(location.hash))
    addEventListener('hashchange', onChange)
    return () => removeEventListener('hashchange', onChange)
  }, [])
  return route
}

function App() {
  const [session, setSession] = useState<Session | null>(null)
  const [loadError, setLoadError] = useState<string | null>(null)
  const route = useRoute()

  const loadSession = useCallback(async () => {
    try {
      const s = await api<Session>('GET', '/session')
      setCsrfToken(s.csrf_token)
      setSession(s)
      setLoadError(null)
    } catch (error) {
      setLoadError(error instanceof ApiError ? error.message : String(error))
    }
  }, [])

  useEffect(() => {
    void loadSession()
    return onSignedOut(() => void loadSession())
  }, [loadSession])

  useEffect(() => {
    const titles: Record<Route['page'], string> = {
      projects: 'Projects',
      integration: 'Integration',
      users: 'Users',
      attributes: 'Attributes',
      segments: 'Segments',
      'not-found': 'Not found',
    }
    document.title = session?.signed_in ? `${titles[route.page]} · traitbase` : 'Sign in · traitbase'
  }, [route, session])

  if (loadError)
    return (
      <main class="narrow">
        <h1>traitbase</h1>
        <p class="error" role="alert">
          {loadError}
        </p>
        <button type="button" onClick={() => void loadSession()}>
          Try again
        </button>
      </main>
    )
  if (!session)
    return (
      <main class="narrow" aria-busy="true">
        <p>Loading…</p>
      </main>
    )
  if (!session.password_set) return <NoPasswordPage onRecheck={loadSession} />
  if (!session.signed_in) return <SignInPage onSignedIn={loadSession} />
  return <SignedIn route={route} onSignedOut={loadSession} />
}

function SignedIn(props: { route: Route; onSignedOut: () => Promise<void> }) {
  const { route } = props
  const [projects, setProjects] = useState<Project[] | null>(null)
  const [error, setError] = useState<string | null>(null)

  const reload = useCallback(async () => {
    try {
      const { projects } = await api<{ projects: Project[] }>('GET', '/projects')
      setProjects(projects)
      setError(null)
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e))
    }
  }, [])
  // Loaded at sign-in and again each time the projects page is opened, so its user counts and last
  // uploads are current (they move with every upload).
  const onProjectsPage = route.page === 'projects'
  useEffect(() => {
    void reload()
  }, [reload, onProjectsPage])

  const signOut = async () => {
    try {
      await api('DELETE', '/session')
    } finally {
      setCsrfToken(null)
      location.hash = '#/'
      await props.onSignedOut()
    }
  }

  // A new page moves the focus to its content, so keyboard and screen reader users start there.
  const routeKey = 'projectId' in route ? `${route.page}/${route.projectId}` : route.page
  useEffect(() => {
    document.getElementById('content')?.focus({ preventScroll: true })
  }, [routeKey])

  const project = 'projectId' in route ? projects?.find((p) => String(p.id) === route.projectId) : undefined

  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header class="top">
        <a href="#/" class="brand">
          traitbase
        </a>
        {project ? (
          <span class="crumb">
            <span aria-hidden="true">/</span> {project.name}
          </span>
        ) : null}
        <button type="button" class="link sign-out" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      {project && 'projectId' in route ? (
        <nav class="tabs" aria-label="Project">
          <a href="#/">Projects</a>
          {TABS.map((tab) => (
            <a
              key={tab.page}
              href={projectHref(String(project.id), tab.page)}
              aria-current={route.page === tab.page ? 'page' : undefined}
            >
              {tab.label}
            </a>
          ))}
        </nav>
      ) : null}
      <main id="content" tabIndex={-1}>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        {projects === null ? (
          <p aria-busy="true">Loading…</p>
        ) : route.page === 'projects' ? (
          <ProjectsPage projects={projects} reload={reload} />
        ) : route.page === 'not-found' || !project ? (
          <section>
            <h1>Not found</h1>
            <p>
              There is no such page or project. <a href="#/">Go to your projects</a>.
            </p>
          </section>
        ) : route.page === 'integration' ? (
          <IntegrationPage key={project.id} project={project} reloadProjects={reload} />
        ) : route.page === 'users' ? (
          <UsersPage key={project.id} project={project} reloadProjects={reload} />
        ) : route.page === 'attributes' ? (
          <AttributesPage key={project.id} project={project} />
        ) : (
          <SegmentsPage key={project.id} project={project} />
        )}
      </main>
    </>
  )
}

const root = document.getElementById('app')
if (root) render(<App />, root)
