import { useEffect, useReducer, useState } from 'preact/hooks'
import {
  api,
  ApiError,
  enc,
  request,
  type Catalog,
  type CatalogAttribute,
  type Project,
  type SavedSegment,
} from '../api.js'
import { ConfirmDialog, CopyButton, EmptyState } from '../components.js'
import {
  fromWhere,
  newGroup,
  newRule,
  nodeAtPath,
  toWhere,
  type GroupNode,
  type Match,
  type RuleNode,
} from '../condition.js'
import { formatCount, formatDateTime, plural } from '../format.js'
import { fieldType, operatorsFor, operatorSpec, RELATIVE_UNITS } from '../operators.js'
import { projectHref } from '../routes.js'

const DEBOUNCE_MS = 350
const MAX_DEPTH = 3
const SUGGESTIONS = 8

interface Editing {
  /** The saved segment being edited, or null for a new one. */
  readonly segment: SavedSegment | null
}

export function SegmentsPage(props: { project: Project }) {
  const base = `/projects/${enc(props.project.id)}`
  const [segments, setSegments] = useState<SavedSegment[] | null>(null)
  const [catalog, setCatalog] = useState<Catalog | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [editing, setEditing] = useState<Editing>({ segment: null })
  const [editorKey, setEditorKey] = useState(0)
  const [deleting, setDeleting] = useState<SavedSegment | null>(null)
  const [deleteError, setDeleteError] = useState<string | null>(null)

  const loadSegments = async () => {
    try {
      const { segments } = await api<{ segments: SavedSegment[] }>('GET', `${base}/segments`)
      setSegments(segments)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    }
  }
  useEffect(() => {
    void loadSegments()
    api<Catalog>('GET', `${base}/attributes`).then(setCatalog, (e: unknown) =>
      setError(e instanceof Error ? e.message : String(e)),
    )
  }, [base])

  const startEditing = (segment: SavedSegment | null) => {
    setEditing({ segment })
    setEditorKey((k) => k + 1)
    requestAnimationFrame(() => document.getElementById('editor-heading')?.focus())
  }

  const remove = async () => {
    if (!deleting) return
    try {
      await api('DELETE', `${base}/segments/${enc(deleting.id)}`)
      if (editing.segment?.id === deleting.id) startEditing(null)
      setDeleting(null)
      setDeleteError(null)
      await loadSegments()
    } catch (e) {
      setDeleteError(e instanceof Error ? e.message : String(e))
    }
  }

  return (
    <section>
      <h1>Segments</h1>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <h2>Saved segments</h2>
      {segments === null ? (
        <p aria-busy="true">Loading…</p>
      ) : segments.length === 0 ? (
        <EmptyState title="No saved segments yet">
          <p>Build one below: press Add condition, pick a field and a value, then Save segment.</p>
        </EmptyState>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Saved segments</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="num">
                  Users
                </th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {segments.map((segment) => (
                <tr key={segment.id} aria-current={editing.segment?.id === segment.id ? 'true' : undefined}>
                  <th scope="row">{segment.name}</th>
                  <td class="num">{formatCount(segment.count)}</td>
                  <td>{formatDateTime(segment.updated_at)}</td>
                  <td class="row-actions">
                    <button type="button" aria-label={`Edit ${segment.name}`} onClick={() => startEditing(segment)}>
                      Edit
                    </button>
                    <button
                      type="button"
                      class="danger-outline"
                      aria-label={`Delete ${segment.name}`}
                      onClick={() => setDeleting(segment)}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {deleting ? (
        <ConfirmDialog
          title={`Delete segment "${deleting.name}"?`}
          confirmLabel="Delete segment"
          danger
          error={deleteError}
          onConfirm={() => void remove()}
          onCancel={() => setDeleting(null)}
        >
          <p>Only the saved condition is deleted; the users stay.</p>
        </ConfirmDialog>
      ) : null}
      <Editor
        key={editorKey}
        base={base}
        project={props.project}
        catalog={catalog}
        segment={editing.segment}
        onNew={() => startEditing(null)}
        onSaved={async (saved) => {
          await loadSegments()
          setEditing({ segment: saved })
        }}
      />
    </section>
  )
}

function Editor(props: {
  base: string
  project: Project
  catalog: Catalog | null
  segment: SavedSegment | null
  onNew: () => void
  onSaved: (segment: SavedSegment) => Promise<void>
}) {
  const { segment } = props
  const [root] = useState<GroupNode>(() => (segment ? fromWhere(segment.where) : null) ?? newGroup('all', []))
  const [rawJson, setRawJson] = useState<string | null>(() =>
    segment && fromWhere(segment.where) === null ? JSON.stringify(segment.where, null, 2) : null,
  )
  const [, changed] = useReducer((n: number) => n + 1, 0)
  const [name, setName] = useState(segment?.name ?? '')
  const [nameError, setNameError] = useState<string | null>(null)
  const [saveError, setSaveError] = useState<string | null>(null)
  const [saved, setSaved] = useState<string | null>(null)
  const [count, setCount] = useState<{ value: number | null; pending: boolean; error: string | null }>({
    value: null,
    pending: false,
    error: null,
  })
  const [serverError, setServerError] = useState<{ node: number | null; msg: string } | null>(null)
  const [exporting, setExporting] = useState<{ count: number | null; error: string | null } | null>(null)
  const [format, setFormat] = useState<'csv' | 'ndjson'>('csv')
  const [dirty, setDirty] = useState(false)

  let where: unknown = null
  let errors: ReadonlyMap<number, string> = new Map()
  let rawError: string | null = null
  if (rawJson !== null) {
    try {
      where = JSON.parse(rawJson)
    } catch (e) {
      rawError = `Not valid JSON: ${e instanceof Error ? e.message : String(e)}`
    }
  } else {
    const translation = toWhere(root)
    where = translation.where
    errors = translation.errors
  }
  const whereJson = where === null ? null : JSON.stringify(where)

  const edit = () => {
    setDirty(true)
    setSaved(null)
    changed(0)
  }

  // The live count: debounced, the previous request aborted, so typing never waits on the server.
  useEffect(() => {
    setServerError(null)
    if (whereJson === null) {
      setCount((c) => ({ ...c, pending: false, error: null }))
      return
    }
    const controller = new AbortController()
    setCount((c) => ({ ...c, pending: true }))
    const timer = setTimeout(() => {
      api<{ count: number }>('POST', `${props.base}/segments/query`, {
        body: { where: JSON.parse(whereJson) as unknown, limit: 1 },
        signal: controller.signal,
      }).then(
        (page) => {
          if (!controller.signal.aborted) setCount({ value: page.count, pending: false, error: null })
        },
        (e: unknown) => {
          if (controller.signal.aborted) return
          const msg = e instanceof Error ? e.message : String(e)
          setCount({ value: null, pending: false, error: msg })
          if (e instanceof ApiError && e.status === 400 && rawJson === null)
            setServerError({ node: nodeAtPath(root, msg), msg })
        },
      )
    }, DEBOUNCE_MS)
    return () => {
      clearTimeout(timer)
      controller.abort()
    }
  }, [whereJson])

  const save = async (e: Event) => {
    e.preventDefault()
    if (name.trim() === '') {
      setNameError('Give the segment a name.')
      return
    }
    setNameError(null)
    if (where === null) {
      setSaveError('Complete the conditions marked above first.')
      return
    }
    try {
      const body = { name: name.trim(), where }
      const result = segment
        ? await api<SavedSegment>('PUT', `${props.base}/segments/${enc(segment.id)}`, { body })
        : await api<SavedSegment>('POST', `${props.base}/segments`, { body })
      const stored = 'segment' in (result as object) ? (result as unknown as { segment: SavedSegment }).segment : result
      setSaveError(null)
      setDirty(false)
      setSaved(`Saved "${stored.name}" (${plural(stored.count, 'user', 'users')}).`)
      await props.onSaved(stored)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      if (err instanceof ApiError && msg.startsWith('where') && rawJson === null)
        setServerError({ node: nodeAtPath(root, msg), msg })
      if (err instanceof ApiError && /name/i.test(msg) && !msg.startsWith('where')) setNameError(msg)
      else setSaveError(msg)
    }
  }

  const openExport = async () => {
    if (where === null) {
      setSaveError('Complete the conditions marked above before exporting.')
      return
    }
    setExporting({ count: null, error: null })
    try {
      const page = await api<{ count: number }>('POST', `${props.base}/segments/query`, { body: { where, limit: 1 } })
      setExporting({ count: page.count, error: null })
    } catch (e) {
      setExporting({ count: null, error: e instanceof Error ? e.message : String(e) })
    }
  }

  const download = async () => {
    const fileName = `${(name.trim() || 'segment').replace(/[^\w.-]+/g, '_')}.${format}`
    const link = document.createElement('a')
    link.download = fileName
    if (segment && !dirty) {
      // A saved segment streams straight to disk: no copy of the export is held in the page.
      link.href = `/admin/api${props.base}/segments/${enc(segment.id)}/export?format=${format}`
      link.click()
      setExporting(null)
      return
    }
    try {
      const res = await request('POST', `/admin/api${props.base}/segments/export`, { body: { where, format } })
      const url = URL.createObjectURL(await res.blob())
      link.href = url
      link.click()
      setTimeout(() => URL.revokeObjectURL(url), 60_000)
      setExporting(null)
    } catch (e) {
      setExporting((now) => ({ count: now?.count ?? null, error: e instanceof Error ? e.message : String(e) }))
    }
  }

  const attributes = props.catalog?.attributes ?? []
  return (
    <section class="card editor" aria-labelledby="editor-heading">
      <div class="page-head">
        <h2 id="editor-heading" tabIndex={-1}>
          {segment ? `Edit "${segment.name}"` : 'New segment'}
        </h2>
        {segment ? (
          <button type="button" onClick={props.onNew}>
            Start a new segment
          </button>
        ) : null}
      </div>
      <div class="count-bar" aria-busy={count.pending ? 'true' : 'false'}>
        <span id="matching-label">Matching users</span>
        <output aria-labelledby="matching-label" class="count">
          {whereJson === null
            ? '—'
            : count.value === null
              ? count.pending
                ? 'Counting…'
                : '—'
              : formatCount(count.value)}
        </output>
        <span class="muted small">
          {whereJson === null
            ? 'Complete the conditions to see a count.'
            : count.pending
              ? 'updating…'
              : props.catalog
                ? `of ${formatCount(props.catalog.users)}`
                : ''}
        </span>
      </div>
      {count.error && !serverError ? (
        <p class="error" role="alert">
          {count.error}
        </p>
      ) : null}
      {rawJson !== null ? (
        <div class="stack">
          <p>
            This condition has a shape the builder cannot show (for example a "not" around an "all"). Edit it as JSON.
          </p>
          <label for="raw-json">Condition (JSON)</label>
          <textarea
            id="raw-json"
            class="mono"
            rows={10}
            value={rawJson}
            aria-invalid={rawError ? 'true' : undefined}
            aria-describedby={rawError ? 'raw-json-error' : undefined}
            onInput={(e) => {
              setRawJson(e.currentTarget.value)
              edit()
            }}
          />
          {rawError ? (
            <p class="error" id="raw-json-error" role="alert">
              {rawError}
            </p>
          ) : null}
        </div>
      ) : (
        <GroupEditor
          group={root}
          depth={0}
          attributes={attributes}
          errors={errors}
          serverError={serverError}
          onChange={edit}
        />
      )}
      <details class="json">
        <summary>The condition as API JSON</summary>
        {whereJson === null ? (
          <p class="muted">Complete the conditions to see the JSON.</p>
        ) : (
          <>
            <pre class="code" tabIndex={0} aria-label="Condition as API JSON">
              <code>{JSON.stringify(where, null, 2)}</code>
            </pre>
            <CopyButton text={JSON.stringify(where)} label="Copy JSON" />
            <p class="hint">
              Send it as <code>{'{"where": …}'}</code> to <code>POST /v1/user/segments/query</code> or{' '}
              <code>/v1/user/segments/export</code>.
            </p>
          </>
        )}
      </details>
      <form class="save-row" onSubmit={(e) => void save(e)} noValidate>
        <div class="field grow">
          <label for="segment-name">Segment name</label>
          <input
            id="segment-name"
            value={name}
            maxLength={200}
            aria-invalid={nameError ? 'true' : undefined}
            aria-describedby={nameError ? 'segment-name-error' : undefined}
            onInput={(e) => {
              setName(e.currentTarget.value)
              setSaved(null)
            }}
          />
        </div>
        <div class="field end actions">
          <button type="submit" class="primary">
            Save segment
          </button>
          <button type="button" onClick={() => void openExport()}>
            Export
          </button>
        </div>
        {nameError ? (
          <p class="error full" id="segment-name-error" role="alert">
            {nameError}
          </p>
        ) : null}
        {saveError ? (
          <p class="error full" role="alert">
            {saveError}
          </p>
        ) : null}
        {saved ? (
          <p class="notice full" role="status">
            {saved}
          </p>
        ) : null}
      </form>
      {exporting ? (
        <ConfirmDialog
          title="Export users"
          confirmLabel="Download"
          busy={exporting.count === null && exporting.error === null}
          error={exporting.error}
          onConfirm={() => void download()}
          onCancel={() => setExporting(null)}
        >
          <p aria-live="polite">
            {exporting.count === null ? (
              'Counting…'
            ) : (
              <>
                The file will hold <strong data-testid="export-rows">{plural(exporting.count, 'row', 'rows')}</strong>,
                one per user, with every attribute.
              </>
            )}
          </p>
          <label for="export-format">Format</label>
          <select
            id="export-format"
            value={format}
            onChange={(e) => setFormat(e.currentTarget.value === 'ndjson' ? 'ndjson' : 'csv')}
          >
            <option value="csv">CSV</option>
            <option value="ndjson">NDJSON</option>
          </select>
          <p class="hint">
            {format === 'csv'
              ? 'user_id, then one column per attribute.'
              : 'One {"user_id", "attributes"} object per line.'}{' '}
            No row cap: the file is streamed from the database.
          </p>
        </ConfirmDialog>
      ) : null}
      {props.catalog && props.catalog.attributes.length === 0 ? (
        <p class="hint">
          No attributes uploaded yet, so only <code>user_id</code> can be used. Upload users from the{' '}
          <a href={projectHref(props.project.id, 'integration')}>Integration page</a>.
        </p>
      ) : null}
    </section>
  )
}

const MATCH_LABELS: Record<Match, string> = { all: 'all of', any: 'any of', none: 'none of' }

function GroupEditor(props: {
  group: GroupNode
  depth: number
  attributes: CatalogAttribute[]
  errors: ReadonlyMap<number, string>
  serverError: { node: number | null; msg: string } | null
  onChange: () => void
  onRemove?: () => void
}) {
  const { group } = props
  const matchId = `match-${group.id}`
  return (
    <fieldset class={`group depth-${props.depth}`} id={`group-${group.id}`}>
      <legend class="visually-hidden">{props.depth === 0 ? 'Conditions' : 'Group of conditions'}</legend>
      <div class="group-head">
        <label for={matchId}>{props.depth === 0 ? 'Users matching' : 'Group: users matching'}</label>
        <select
          id={matchId}
          value={group.match}
          onChange={(e) => {
            group.match = e.currentTarget.value as Match
            props.onChange()
          }}
        >
          {(Object.keys(MATCH_LABELS) as Match[]).map((m) => (
            <option key={m} value={m}>
              {MATCH_LABELS[m]}
            </option>
          ))}
        </select>
        <span class="muted small">these conditions</span>
        {props.onRemove ? (
          <button type="button" class="link" onClick={props.onRemove}>
            Remove group
          </button>
        ) : null}
      </div>
      {props.serverError && props.serverError.node === group.id ? (
        <p class="error" role="alert">
          {props.serverError.msg}
        </p>
      ) : null}
      {group.children.length === 0 ? (
        <p class="muted small">
          {group.match === 'any'
            ? 'No conditions: "any of" nothing matches no one. Add a condition.'
            : group.match === 'none'
              ? 'No conditions: matches everyone. Add a condition.'
              : 'No conditions yet: every user matches. Add a condition to narrow it down.'}
        </p>
      ) : null}
      <ol class="conditions">
        {group.children.map((child, index) => {
          const remove = () => {
            group.children.splice(index, 1)
            props.onChange()
          }
          return (
            <li key={child.id}>
              {index > 0 ? (
                <span class="joiner" aria-hidden="true">
                  {group.match === 'any' ? 'or' : group.match === 'none' ? 'nor' : 'and'}
                </span>
              ) : null}
              {child.kind === 'group' ? (
                <GroupEditor {...props} group={child} depth={props.depth + 1} onRemove={remove} />
              ) : (
                <RuleEditor
                  rule={child}
                  attributes={props.attributes}
                  error={
                    props.errors.get(child.id) ?? (props.serverError?.node === child.id ? props.serverError.msg : null)
                  }
                  onChange={props.onChange}
                  onRemove={remove}
                />
              )}
            </li>
          )
        })}
      </ol>
      <div class="actions">
        <button
          type="button"
          onClick={() => {
            const first = props.attributes[0]?.name ?? 'user_id'
            group.children.push(newRule(first))
            props.onChange()
            requestAnimationFrame(() => {
              const fields = document.querySelectorAll<HTMLSelectElement>(
                `#group-${group.id} > .conditions > li > .rule select.field-select`,
              )
              fields[fields.length - 1]?.focus()
            })
          }}
        >
          Add condition
        </button>
        {props.depth < MAX_DEPTH - 1 ? (
          <button
            type="button"
            onClick={() => {
              group.children.push(
                newGroup(group.match === 'any' ? 'all' : 'any', [newRule(props.attributes[0]?.name ?? 'user_id')]),
              )
              props.onChange()
            }}
          >
            Add group
          </button>
        ) : null}
      </div>
    </fieldset>
  )
}

function RuleEditor(props: {
  rule: RuleNode
  attributes: CatalogAttribute[]
  error: string | null
  onChange: () => void
  onRemove: () => void
}) {
  const { rule } = props
  const attribute = props.attributes.find((a) => a.name === rule.field)
  const type = rule.field === 'user_id' ? 'string' : fieldType(attribute)
  const ops = operatorsFor(type)
  const spec = operatorSpec(rule.op)
  if (spec && !ops.includes(spec)) ops.push(spec)
  const id = `rule-${rule.id}`
  const errorId = `${id}-error`
  const fieldNames = props.attributes.map((a) => a.name)
  if (!fieldNames.includes('user_id')) fieldNames.unshift('user_id')
  if (rule.field !== '' && !fieldNames.includes(rule.field)) fieldNames.push(rule.field)
  const kind = spec?.value ?? 'text'
  const listed = kind === 'list' ? rule.value.split(',').map((v) => v.trim()) : []
  const typed = kind === 'list' ? (listed[listed.length - 1] ?? '') : rule.value
  const suggestions =
    kind === 'text' || kind === 'list' || kind === 'number'
      ? (attribute?.top_values ?? [])
          .filter(
            (v) =>
              v.value.toLowerCase().includes(typed.toLowerCase()) && !(kind === 'list' && listed.includes(v.value)),
          )
          .slice(0, SUGGESTIONS)
      : []
  const describedBy = props.error ? errorId : undefined

  const setValue = (value: string) => {
    rule.value = value
    props.onChange()
  }

  return (
    <div class={`rule${props.error ? ' invalid' : ''}`}>
      <div class="rule-row">
        <div class="field">
          <label for={`${id}-field`}>Field</label>
          <select
            id={`${id}-field`}
            class="field-select"
            value={rule.field}
            onChange={(e) => {
              rule.field = e.currentTarget.value
              const nextType =
                rule.field === 'user_id' ? 'string' : fieldType(props.attributes.find((a) => a.name === rule.field))
              if (!operatorsFor(nextType).some((o) => o.op === rule.op)) rule.op = operatorsFor(nextType)[0]?.op ?? 'eq'
              props.onChange()
            }}
          >
            {rule.field === '' ? <option value="">Choose a field</option> : null}
            {fieldNames.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={`${id}-op`}>Operator</label>
          <select
            id={`${id}-op`}
            value={rule.op}
            onChange={(e) => {
              const next = operatorSpec(e.currentTarget.value)
              rule.op = e.currentTarget.value
              if (next?.value === 'relative' && !(RELATIVE_UNITS as readonly string[]).includes(rule.value2))
                rule.value2 = 'days'
              if (next?.value === 'date-range' && (RELATIVE_UNITS as readonly string[]).includes(rule.value2))
                rule.value2 = ''
              props.onChange()
            }}
          >
            {ops.map((o) => (
              <option key={o.op} value={o.op}>
                {o.label}
              </option>
            ))}
          </select>
        </div>
        <div class="field grow">
          <label for={`${id}-value`}>{kind === 'date-range' ? 'From' : kind === 'relative' ? 'Amount' : 'Value'}</label>
          <input
            id={`${id}-value`}
            value={kind === 'none' ? '' : rule.value}
            disabled={kind === 'none'}
            placeholder={
              kind === 'none'
                ? 'no value needed'
                : kind === 'list'
                  ? 'values, separated by commas'
                  : kind === 'number'
                    ? 'a number'
                    : kind === 'date' || kind === 'date-range'
                      ? 'YYYY-MM-DD'
                      : ''
            }
            inputMode={kind === 'number' || kind === 'relative' ? 'decimal' : undefined}
            type={(kind === 'date' || kind === 'date-range' ? 'date' : 'text') as 'text'}
            spellcheck={false}
            autocomplete="off"
            aria-invalid={props.error ? 'true' : undefined}
            aria-describedby={describedBy}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        </div>
        {kind === 'date-range' ? (
          <div class="field">
            <label for={`${id}-to`}>To</label>
            <input
              id={`${id}-to`}
              type="date"
              value={rule.value2}
              onInput={(e) => {
                rule.value2 = e.currentTarget.value
                props.onChange()
              }}
            />
          </div>
        ) : null}
        {kind === 'relative' ? (
          <div class="field">
            <label for={`${id}-unit`}>Unit</label>
            <select
              id={`${id}-unit`}
              value={rule.value2}
              onChange={(e) => {
                rule.value2 = e.currentTarget.value
                props.onChange()
              }}
            >
              {RELATIVE_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="field end">
          <button
            type="button"
            class="icon"
            aria-label={`Remove condition on ${rule.field || 'no field'}`}
            onClick={props.onRemove}
          >
            ✕
          </button>
        </div>
      </div>
      {suggestions.length > 0 ? (
        <div class="suggestions" role="group" aria-label={`Suggestions for ${rule.field}`}>
          {suggestions.map((s) => (
            <button
              key={s.value}
              type="button"
              class="pill"
              onClick={() => {
                if (kind === 'list') {
                  const kept = listed.slice(0, -1).filter((v) => v !== '')
                  setValue([...kept, s.value].join(', '))
                } else setValue(s.value)
              }}
            >
              <span class="mono">{s.value === '' ? '(empty)' : s.value}</span>{' '}
              <span class="pill-count">{formatCount(s.users)}</span>
            </button>
          ))}
        </div>
      ) : null}
      {props.error ? (
        <p class="error" id={errorId} role="alert">
          {props.error}
        </p>
      ) : null}
    </div>
  )
}
