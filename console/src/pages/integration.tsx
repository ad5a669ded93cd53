import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { api, enc, type ApiKey, type KeyEvent, type LoggedRequest, type Project } from '../api.js'
import { ConfirmDialog, CopyButton, EmptyState } from '../components.js'
import { formatCount, formatDateTime, formatDuration, formatRelative, formatTime } from '../format.js'
import { buildSnippets, SAMPLE_BODY, type SnippetLanguage } from '../snippets.js'

/** A secret is known only right after it was created or rotated; it lives in this page's memory only. */
interface KnownSecret {
  keyId: string
  label: string
  secret: string
}

const SCOPES = ['profiles:write', 'profiles:read'] as const

export function IntegrationPage(props: { project: Project; reloadProjects: () => Promise<void> }) {
  const { project } = props
  const [keys, setKeys] = useState<ApiKey[] | null>(null)
  const [keysError, setKeysError] = useState<string | null>(null)
  const [secret, setSecret] = useState<KnownSecret | null>(null)
  const base = `/projects/${enc(project.id)}`

  const loadKeys = useCallback(async () => {
    try {
      const { keys } = await api<{ keys: ApiKey[] }>('GET', `${base}/keys`)
      setKeys(keys)
      setKeysError(null)
    } catch (e) {
      setKeysError(e instanceof Error ? e.message : String(e))
    }
  }, [base])
  useEffect(() => {
    void loadKeys()
  }, [loadKeys])

  return (
    <>
      <h1>Integration</h1>
      <FirstUpload project={project} />
      <KeysSection
        base={base}
        keys={keys}
        error={keysError}
        reload={loadKeys}
        secret={secret}
        onSecret={(s) => setSecret(s)}
      />
      <KeyHistory base={base} keys={keys ?? []} />
      <SnippetsSection secret={secret} />
      <TestRequestSection secret={secret} />
      <RequestLog
        base={base}
        keys={keys ?? []}
        onNewRequests={async () => {
          // New calls move "last upload" (the waiting banner) and the keys' "last used".
          await Promise.all([props.reloadProjects(), loadKeys()])
        }}
      />
    </>
  )
}

function FirstUpload(props: { project: Project }) {
  const [wasWaiting] = useState(props.project.last_upload_at === null)
  if (props.project.last_upload_at === null)
    return (
      <div class="banner waiting" role="status">
        <span class="pulse" aria-hidden="true" />
        <div>
          <strong>Waiting for your first upload…</strong>
          <p>
            Create a key below and run one of the snippets. This turns green by itself as soon as an upload arrives.
          </p>
        </div>
      </div>
    )
  if (!wasWaiting) return null
  return (
    <div class="banner success" role="status">
      <span class="dot" aria-hidden="true" />
      <div>
        <strong>Your first upload arrived</strong> at {formatDateTime(props.project.last_upload_at)}. Look your users up
        on the Users page, or build a segment.
      </div>
    </div>
  )
}

function stateText(key: ApiKey): string {
  switch (key.state) {
    case 'active':
      return 'Active'
    case 'expiring':
      return key.expires_at ? `Stops ${formatRelative(key.expires_at)} (${formatDateTime(key.expires_at)})` : 'Expiring'
    case 'revoked':
      return `Revoked ${formatDateTime(key.revoked_at)}`
    case 'expired':
      return `Expired ${formatDateTime(key.expires_at)}`
  }
}

function KeysSection(props: {
  base: string
  keys: ApiKey[] | null
  error: string | null
  reload: () => Promise<void>
  secret: KnownSecret | null
  onSecret: (secret: KnownSecret | null) => void
}) {
  const [label, setLabel] = useState('')
  const [scopes, setScopes] = useState<string[]>([...SCOPES])
  const [createError, setCreateError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [revoking, setRevoking] = useState<ApiKey | null>(null)
  const [rotating, setRotating] = useState<ApiKey | null>(null)
  const [grace, setGrace] = useState('86400')
  const [dialogError, setDialogError] = useState<string | null>(null)
  const secretField = useRef<HTMLInputElement>(null)

  useEffect(() => {
    if (props.secret) secretField.current?.focus()
  }, [props.secret])

  const create = async (e: Event) => {
    e.preventDefault()
    if (label.trim() === '') {
      setCreateError('Enter a label, e.g. the system that will use the key ("backend", "nightly sync").')
      return
    }
    if (scopes.length === 0) {
      setCreateError('Choose at least one scope.')
      return
    }
    setBusy(true)
    try {
      const created = await api<{ key: ApiKey; secret: string }>('POST', `${props.base}/keys`, {
        body: { label: label.trim(), scopes },
      })
      props.onSecret({ keyId: created.key.id, label: created.key.label, secret: created.secret })
      setLabel('')
      setCreateError(null)
      await props.reload()
    } catch (err) {
      setCreateError(err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }

  const revoke = async () => {
    if (!revoking) return
    setBusy(true)
    try {
      await api('POST', `${props.base}/keys/${enc(revoking.id)}/revoke`, { body: {} })
      if (props.secret?.keyId === revoking.id) props.onSecret(null)
      setRevoking(null)
      setDialogError(null)
      await props.reload()
    } catch (err) {
      setDialogError(err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }

  const rotate = async () => {
    if (!rotating) return
    setBusy(true)
    try {
      const rotated = await api<{ key: ApiKey; secret: string }>(
        'POST',
        `${props.base}/keys/${enc(rotating.id)}/rotate`,
        {
          body: { grace_seconds: Number(grace) },
        },
      )
      props.onSecret({ keyId: rotated.key.id, label: rotated.key.label, secret: rotated.secret })
      setRotating(null)
      setDialogError(null)
      await props.reload()
    } catch (err) {
      setDialogError(err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }

  const keys = props.keys
  return (
    <section aria-labelledby="keys-heading">
      <h2 id="keys-heading">API keys</h2>
      {props.error ? (
        <p class="error" role="alert">
          {props.error}
        </p>
      ) : null}
      {props.secret ? (
        <div class="card secret" role="group" aria-labelledby="secret-label">
          <label id="secret-label" for="new-secret">
            New API key
          </label>
          <p id="secret-warning" class="warning">
            Copy it now: it will not be shown again. traitbase keeps only its hash.
          </p>
          <div class="secret-row">
            <input
              id="new-secret"
              ref={secretField}
              readOnly
              value={props.secret.secret}
              aria-describedby="secret-warning"
              spellcheck={false}
              onFocus={(e) => e.currentTarget.select()}
            />
            <CopyButton text={props.secret.secret} describedBy="secret-warning" />
          </div>
          <p class="hint">
            The snippets and the test request below use this key ({props.secret.label}) until you leave the page.
          </p>
        </div>
      ) : null}
      <form class="card create-key" onSubmit={(e) => void create(e)} noValidate>
        <div class="field">
          <label for="key-label">Label</label>
          <input
            id="key-label"
            value={label}
            maxLength={100}
            placeholder="e.g. backend"
            aria-invalid={createError ? 'true' : undefined}
            aria-describedby={createError ? 'key-label-error' : undefined}
            onInput={(e) => setLabel(e.currentTarget.value)}
          />
        </div>
        <fieldset class="field">
          <legend>Scopes</legend>
          {SCOPES.map((scope) => (
            <label key={scope} class="check">
              <input
                type="checkbox"
                checked={scopes.includes(scope)}
                onChange={(e) =>
                  setScopes((now) => (e.currentTarget.checked ? [...now, scope] : now.filter((s) => s !== scope)))
                }
              />
              {scope === 'profiles:write' ? 'Upload and delete (profiles:write)' : 'Read and segment (profiles:read)'}
            </label>
          ))}
        </fieldset>
        <div class="field end">
          <button type="submit" class="primary" disabled={busy}>
            Create key
          </button>
        </div>
        {createError ? (
          <p class="error full" id="key-label-error" role="alert">
            {createError}
          </p>
        ) : null}
      </form>
      {keys === null ? (
        <p aria-busy="true">Loading keys…</p>
      ) : keys.length === 0 ? (
        <EmptyState title="No keys yet">
          <p>Give the key a label above and press Create key. Every upload needs one.</p>
        </EmptyState>
      ) : (
        <div class="table-wrap">
          <table class="keys">
            <caption class="visually-hidden">API keys of this project</caption>
            <thead>
              <tr>
                <th scope="col">Label</th>
                <th scope="col">Scopes</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => {
                const usable = key.state === 'active' || key.state === 'expiring'
                return (
                  <tr key={key.id} data-key-id={key.id}>
                    <th scope="row">
                      {key.label || <span class="muted">(no label)</span>}
                      <div class="muted mono small">{key.id}</div>
                    </th>
                    <td>{key.scopes.join(', ')}</td>
                    <td>{formatDateTime(key.created_at)}</td>
                    <td>{formatDateTime(key.last_used_at)}</td>
                    <td>
                      <span class={`state state-${key.state}`}>{stateText(key)}</span>
                    </td>
                    <td class="row-actions">
                      {key.state === 'active' ? (
                        <button
                          type="button"
                          aria-label={`Rotate ${key.label || key.id}`}
                          onClick={() => {
                            setDialogError(null)
                            setRotating(key)
                          }}
                        >
                          Rotate
                        </button>
                      ) : null}
                      {usable ? (
                        <button
                          type="button"
                          class="danger-outline"
                          aria-label={`Revoke ${key.label || key.id}`}
                          onClick={() => {
                            setDialogError(null)
                            setRevoking(key)
                          }}
                        >
                          Revoke
                        </button>
                      ) : null}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {revoking ? (
        <ConfirmDialog
          title={`Revoke "${revoking.label || revoking.id}"?`}
          confirmLabel="Revoke key"
          danger
          busy={busy}
          error={dialogError}
          onConfirm={() => void revoke()}
          onCancel={() => setRevoking(null)}
        >
          <p>Requests with this key are refused from the next one on. This cannot be undone.</p>
        </ConfirmDialog>
      ) : null}
      {rotating ? (
        <ConfirmDialog
          title={`Rotate "${rotating.label || rotating.id}"`}
          confirmLabel="Rotate key"
          busy={busy}
          error={dialogError}
          onConfirm={() => void rotate()}
          onCancel={() => setRotating(null)}
        >
          <p>A new key is created now. The old one keeps working for the time you pick, then stops by itself.</p>
          <label for="grace">Keep the old key working for</label>
          <select id="grace" value={grace} onChange={(e) => setGrace(e.currentTarget.value)}>
            <option value="3600">1 hour</option>
            <option value="86400">24 hours</option>
            <option value="604800">7 days</option>
            <option value="0">No time: stop it now</option>
          </select>
        </ConfirmDialog>
      ) : null}
    </section>
  )
}

/** Who created, rotated and revoked which key, newest first: reloaded whenever the keys change. */
function KeyHistory(props: { base: string; keys: ApiKey[] }) {
  const [events, setEvents] = useState<KeyEvent[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  // Reload when a key is created, rotated or revoked, not each time "last used" moves.
  const keySignature = props.keys.map((k) => `${k.id}:${k.state}`).join(',')
  useEffect(() => {
    api<{ events: KeyEvent[] }>('GET', `${props.base}/key-events`).then(
      (answer) => setEvents(answer.events),
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    )
  }, [props.base, keySignature])
  const labelOf = (keyId: string) => props.keys.find((k) => k.id === keyId)?.label || keyId
  return (
    <details class="history">
      <summary>Key history{events ? ` (${formatCount(events.length)})` : ''}</summary>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : events === null ? (
        <p aria-busy="true">Loading…</p>
      ) : events.length === 0 ? (
        <p class="muted">No key was created, rotated or revoked yet.</p>
      ) : (
        <ul>
          {events.map((event) => (
            <li key={event.id}>
              <time dateTime={event.at}>{formatDateTime(event.at)}</time> <strong>{event.event}</strong>{' '}
              {labelOf(event.key_id)} <span class="muted">by {event.actor}</span>
              {event.detail ? <span class="muted"> · {event.detail}</span> : null}
            </li>
          ))}
        </ul>
      )}
    </details>
  )
}

function SnippetsSection(props: { secret: KnownSecret | null }) {
  const [language, setLanguage] = useState<SnippetLanguage>('curl')
  const snippets = buildSnippets(location.origin, props.secret?.secret ?? null)
  const current = snippets.find((s) => s.language === language) ?? snippets[0]
  const tabs = useRef<(HTMLButtonElement | null)[]>([])
  if (!current) return null
  const move = (index: number) => {
    const next = snippets[(index + snippets.length) % snippets.length]
    if (!next) return
    setLanguage(next.language)
    tabs.current[(index + snippets.length) % snippets.length]?.focus()
  }
  return (
    <section aria-labelledby="snippets-heading">
      <h2 id="snippets-heading">Upload code</h2>
      <p>
        The spec's example upload, for this server ({location.origin}),{' '}
        {props.secret ? (
          <>
            with the key <strong>{props.secret.label}</strong> filled in.
          </>
        ) : (
          <>
            reading the key from <code>TRAITBASE_API_KEY</code>. Create a key above to have it filled in.
          </>
        )}
      </p>
      <div role="tablist" aria-label="Language" class="tablist">
        {snippets.map((snippet, i) => (
          <button
            key={snippet.language}
            ref={(el) => {
              tabs.current[i] = el
            }}
            type="button"
            role="tab"
            id={`tab-${snippet.language}`}
            aria-selected={snippet.language === current.language}
            aria-controls="snippet-panel"
            tabIndex={snippet.language === current.language ? 0 : -1}
            onClick={() => setLanguage(snippet.language)}
            onKeyDown={(e) => {
              if (e.key === 'ArrowRight') move(i + 1)
              else if (e.key === 'ArrowLeft') move(i - 1)
            }}
          >
            {snippet.title}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="snippet-panel" aria-labelledby={`tab-${current.language}`} class="snippet">
        <div class="snippet-head">
          <p class="hint" id="snippet-how">
            {current.howTo}
          </p>
          <CopyButton text={current.code} label={`Copy ${current.title} code`} />
        </div>
        <pre class="code" tabIndex={0} aria-label={`${current.title} code`} data-language={current.language}>
          <code>{current.code}</code>
        </pre>
      </div>
    </section>
  )
}

function TestRequestSection(props: { secret: KnownSecret | null }) {
  const [body, setBody] = useState(() => JSON.stringify(SAMPLE_BODY, null, 2))
  const [key, setKey] = useState(props.secret?.secret ?? '')
  const [bodyError, setBodyError] = useState<string | null>(null)
  const [keyError, setKeyError] = useState<string | null>(null)
  const [result, setResult] = useState<{ ok: boolean; status: number; msg: string; requestId: string | null } | null>(
    null,
  )
  const [busy, setBusy] = useState(false)
  useEffect(() => {
    if (props.secret) setKey(props.secret.secret)
  }, [props.secret])

  const send = async (e: Event) => {
    e.preventDefault()
    setResult(null)
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
      setBodyError(null)
    } catch (err) {
      setBodyError(`This is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    if (key.trim() === '') {
      setKeyError('Paste an API key of this project, or create one above.')
      return
    }
    setKeyError(null)
    setBusy(true)
    try {
      const res = await fetch('/v1/user/profiles?dry_run=true', {
        method: 'POST',
        credentials: 'omit',
        headers: { authorization: `Bearer ${key.trim()}`, 'content-type': 'application/json' },
        body: JSON.stringify(parsed),
      })
      let msg = `${res.status} ${res.statusText}`
      try {
        const answer = (await res.json()) as { msg?: unknown }
        if (typeof answer.msg === 'string') msg = answer.msg
      } catch {
        // keep the status line
      }
      setResult({ ok: res.ok, status: res.status, msg, requestId: res.headers.get('x-request-id') })
    } catch {
      setResult({ ok: false, status: 0, msg: 'The server did not answer.', requestId: null })
    } finally {
      setBusy(false)
    }
  }

  return (
    <section aria-labelledby="test-heading">
      <h2 id="test-heading">Send a test request</h2>
      <p>
        Checks a body against the real upload rules, with a real key, without storing anything (
        <code>POST /v1/user/profiles?dry_run=true</code>). It answers exactly as an upload would.
      </p>
      <form class="stack" onSubmit={(e) => void send(e)} noValidate>
        <label for="test-key">API key</label>
        <input
          id="test-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={key}
          placeholder="tbk_…"
          aria-invalid={keyError ? 'true' : undefined}
          aria-describedby={keyError ? 'test-key-error' : undefined}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        {keyError ? (
          <p class="error" id="test-key-error" role="alert">
            {keyError}
          </p>
        ) : null}
        <label for="test-body">Request body</label>
        <textarea
          id="test-body"
          rows={9}
          spellcheck={false}
          class="mono"
          value={body}
          aria-invalid={bodyError ? 'true' : undefined}
          aria-describedby={bodyError ? 'test-body-error' : undefined}
          onInput={(e) => setBody(e.currentTarget.value)}
        />
        {bodyError ? (
          <p class="error" id="test-body-error" role="alert">
            {bodyError}
          </p>
        ) : null}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Send a test request
          </button>
        </div>
        <div role="status" aria-label="Test result">
          {result ? (
            <p class={result.ok ? 'result ok' : 'result failed'}>
              <strong>{result.status === 0 ? 'No answer' : `${result.status}`}</strong>{' '}
              {result.ok ? 'Valid: a real upload would be stored. ' : ''}
              <span class="mono">{result.msg}</span>
              {result.requestId ? <span class="muted small"> (request id {result.requestId})</span> : null}
            </p>
          ) : null}
        </div>
      </form>
    </section>
  )
}

const POLL_MS = 2000
const MAX_ROWS = 500

function RequestLog(props: { base: string; keys: ApiKey[]; onNewRequests: () => Promise<void> }) {
  const [status, setStatus] = useState('')
  const [keyId, setKeyId] = useState('')
  const [rows, setRows] = useState<LoggedRequest[] | null>(null)
  const [older, setOlder] = useState<string | number | null>(null)
  const [error, setError] = useState<string | null>(null)
  /** False when the server runs with REQUEST_LOG=off (it says so in `enabled`). */
  const [enabled, setEnabled] = useState(true)
  const [fresh, setFresh] = useState<Set<string>>(new Set())
  const newest = useRef<string | number | null>(null)
  const onNew = useRef(props.onNewRequests)
  onNew.current = props.onNewRequests

  const query = useCallback(
    (extra: Record<string, string>) => {
      const params = new URLSearchParams({ limit: '50', ...extra })
      if (status) params.set('status', status)
      if (keyId) params.set('key_id', keyId)
      return `${props.base}/requests?${params}`
    },
    [props.base, status, keyId],
  )

  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    newest.current = null
    setRows(null)
    const first = async () => {
      try {
        const page = await api<{
          requests: LoggedRequest[]
          next_before: string | number | null
          enabled?: boolean
        }>('GET', query({}))
        if (stopped) return
        setEnabled(page.enabled !== false)
        setRows(page.requests)
        setOlder(page.next_before)
        newest.current = page.requests[0]?.id ?? null
        setError(null)
      } catch (e) {
        if (!stopped) setError(e instanceof Error ? e.message : String(e))
      }
      schedule()
    }
    const poll = async () => {
      if (document.hidden) return schedule()
      try {
        const extra: Record<string, string> = { limit: '100' }
        if (newest.current !== null) extra.after = String(newest.current)
        const page = await api<{ requests: LoggedRequest[] }>('GET', query(extra))
        if (stopped) return
        if (page.requests.length > 0) {
          newest.current = page.requests[0]?.id ?? newest.current
          const ids = new Set(page.requests.map((r) => String(r.id)))
          setRows((now) => {
            const kept = (now ?? []).filter((r) => !ids.has(String(r.id)))
            return [...page.requests, ...kept].slice(0, MAX_ROWS)
          })
          setFresh(ids)
          void onNew.current()
        }
        setError(null)
      } catch (e) {
        if (!stopped) setError(e instanceof Error ? e.message : String(e))
      }
      schedule()
    }
    const schedule = () => {
      if (!stopped) timer = setTimeout(() => void poll(), POLL_MS)
    }
    void first()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [query])

  const loadOlder = async () => {
    if (older === null) return
    try {
      const page = await api<{ requests: LoggedRequest[]; next_before: string | number | null }>(
        'GET',
        query({ before: String(older) }),
      )
      setRows((now) => [...(now ?? []), ...page.requests])
      setOlder(page.next_before)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    }
  }

  return (
    <section aria-labelledby="log-heading">
      <div class="page-head">
        <h2 id="log-heading">Request log</h2>
        <span class="live" aria-hidden="true">
          <span class="dot" /> Live
        </span>
      </div>
      <p class="hint">Every call to /v1 on this project, newest first, unsampled. Failures show the exact reason.</p>
      <div class="filters">
        <div class="field">
          <label for="log-status">Status</label>
          <select id="log-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">All</option>
            <option value="2xx">2xx success</option>
            <option value="4xx">4xx refused</option>
            <option value="5xx">5xx server error</option>
          </select>
        </div>
        <div class="field">
          <label for="log-key">Key</label>
          <select id="log-key" value={keyId} onChange={(e) => setKeyId(e.currentTarget.value)}>
            <option value="">All keys</option>
            {props.keys.map((key) => (
              <option key={key.id} value={key.id}>
                {key.label || key.id}
              </option>
            ))}
          </select>
        </div>
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {!enabled ? (
        <p class="warning">
          The request log is off on this server (<code>REQUEST_LOG=off</code>): calls are not recorded, and the
          first-upload banner above cannot see uploads. Restart the server without it to turn the log on.
        </p>
      ) : null}
      {rows === null ? (
        <p aria-busy="true">Loading…</p>
      ) : rows.length === 0 && !enabled ? null : rows.length === 0 ? (
        <EmptyState title={status || keyId ? 'No requests match these filters' : 'No requests yet'}>
          <p>
            {status || keyId
              ? 'Choose All in the filters above to see every request.'
              : 'Run a snippet above or send a test request: each call shows up here within seconds.'}
          </p>
        </EmptyState>
      ) : (
        <ol class="log" aria-label="Requests, newest first">
          {rows.map((row) => (
            <li
              key={row.id}
              class={`${row.status >= 400 ? 'failed' : 'ok'}${fresh.has(String(row.id)) ? ' fresh' : ''}`}
            >
              <div class="log-line">
                <span class={`status s${String(row.status)[0]}`}>{row.status}</span>
                <span class="mono">
                  {row.method} {row.path}
                </span>
                <time dateTime={new Date(row.time).toISOString()} title={formatDateTime(row.time)}>
                  {formatTime(row.time)}
                </time>
              </div>
              <div class="log-meta">
                <span>key {row.key_label ?? row.key_id ?? 'none'}</span>
                <span>{formatDuration(row.duration_ms)}</span>
                {row.users_created !== null || row.users_updated !== null ? (
                  <span>
                    {formatCount(row.users_created ?? 0)} created, {formatCount(row.users_updated ?? 0)} updated
                  </span>
                ) : null}
                <span class="mono small">id {row.request_id}</span>
                {row.dry_run ? <span class="tag">dry run: nothing stored</span> : null}
              </div>
              {row.error ? <p class="log-error mono">{row.error}</p> : null}
            </li>
          ))}
        </ol>
      )}
      {older !== null && rows && rows.length > 0 ? (
        <button type="button" onClick={() => void loadOlder()}>
          Load older requests
        </button>
      ) : null}
    </section>
  )
}
