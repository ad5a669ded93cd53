import { useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError } from '../api.js'

export function NoPasswordPage(props: { onRecheck: () => Promise<void> }) {
  return (
    <main class="narrow">
      <h1>Set an admin password first</h1>
      <p>This server has no admin password yet, so the console stays closed. On the server, run:</p>
      <pre class="code">
        <code>npx traitbase admin set-password</code>
      </pre>
      <p>
        from the server's folder (it asks for the password, or reads it from standard input), or start the server with{' '}
        <code>TRAITBASE_ADMIN_PASSWORD</code> set. Then reload this page.
      </p>
      <button type="button" onClick={() => void props.onRecheck()}>
        Check again
      </button>
    </main>
  )
}

export function SignInPage(props: { onSignedIn: () => Promise<void> }) {
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const input = useRef<HTMLInputElement>(null)
  useEffect(() => input.current?.focus(), [])

  const submit = async (e: Event) => {
    e.preventDefault()
    if (password === '') {
      setError('Enter the admin password.')
      return
    }
    setBusy(true)
    setError(null)
    try {
      await api('POST', '/session', { body: { password }, quiet401: true })
      setPassword('')
      await props.onSignedIn()
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError('Wrong password. Try again.')
      else if (err instanceof ApiError && err.status === 429)
        setError(
          `Too many failed attempts. Try again ${err.retryAfter ? `in ${Math.ceil(err.retryAfter)} seconds` : 'later'}.`,
        )
      else setError(err instanceof Error ? err.message : String(err))
      input.current?.select()
    } finally {
      setBusy(false)
    }
  }

  return (
    <main class="narrow">
      <h1>Sign in to traitbase</h1>
      <form onSubmit={(e) => void submit(e)} class="stack" noValidate>
        {/* For password managers: the console has one account. */}
        <input type="text" name="username" autocomplete="username" value="admin" hidden readOnly />
        <label for="password">Password</label>
        <input
          id="password"
          ref={input}
          type="password"
          autocomplete="current-password"
          value={password}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'password-error' : undefined}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        {error ? (
          <p class="error" id="password-error" role="alert">
            {error}
          </p>
        ) : null}
        <div>
          <button type="submit" class="primary" disabled={busy}>
            Sign in
          </button>
        </div>
      </form>
      <p class="hint">
        Forgot it? Set a new one on the server with <code>npx traitbase admin set-password</code>.
      </p>
    </main>
  )
}
