import { useEffect, useState } from 'preact/hooks'
import { api, enc, type Catalog, type Project } from '../api.js'
import { BarChart, EmptyState } from '../components.js'
import { formatCount, formatPercent } from '../format.js'
import { projectHref } from '../routes.js'

const BARS = 10

export function AttributesPage(props: { project: Project }) {
  const [catalog, setCatalog] = useState<Catalog | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [filter, setFilter] = useState('')

  useEffect(() => {
    api<Catalog>('GET', `/projects/${enc(props.project.id)}/attributes`).then(
      (c) => setCatalog(c),
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    )
  }, [props.project.id])

  if (error)
    return (
      <section>
        <h1>Attributes</h1>
        <p class="error" role="alert">
          {error}
        </p>
      </section>
    )
  if (!catalog)
    return (
      <section>
        <h1>Attributes</h1>
        <p aria-busy="true">Loading the catalog…</p>
      </section>
    )
  const shown = catalog.attributes.filter((a) => a.name.toLowerCase().includes(filter.toLowerCase()))
  return (
    <section>
      <h1>Attributes</h1>
      <p>
        {formatCount(catalog.users)} users, {formatCount(catalog.attributes.length)} attributes.
      </p>
      {catalog.attributes.length === 0 ? (
        <EmptyState title="No attributes yet">
          <p>
            Attributes appear once users are uploaded. Get a key and upload code on the{' '}
            <a href={projectHref(props.project.id, 'integration')}>Integration page</a>.
          </p>
        </EmptyState>
      ) : (
        <>
          <div class="field filter">
            <label for="attr-filter">Filter attributes</label>
            <input id="attr-filter" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          </div>
          {shown.length === 0 ? <p>No attribute name contains "{filter}".</p> : null}
          <div class="attr-grid">
            {shown.map((attribute) => (
              <article class="card attribute" key={attribute.name} aria-labelledby={`attr-${attribute.name}`}>
                <h2 id={`attr-${attribute.name}`} class="mono">
                  {attribute.name}
                </h2>
                <dl class="facts">
                  <div>
                    <dt>Users</dt>
                    <dd>
                      {formatCount(attribute.users)}{' '}
                      <span class="muted">({formatPercent(attribute.users, catalog.users)})</span>
                    </dd>
                  </div>
                  <div>
                    <dt>Distinct values</dt>
                    <dd>
                      {attribute.distinct_values === null ? 'over 65,536' : formatCount(attribute.distinct_values)}
                    </dd>
                  </div>
                  {attribute.type ? (
                    <div>
                      <dt>Type</dt>
                      <dd>{attribute.type}</dd>
                    </div>
                  ) : null}
                </dl>
                {attribute.top_values && attribute.top_values.length > 0 ? (
                  <BarChart
                    title={`Top values of ${attribute.name}`}
                    bars={attribute.top_values.slice(0, BARS).map((v) => ({ label: v.value, value: v.users }))}
                  />
                ) : (
                  <p class="muted">Too many different values to chart (over 1,000).</p>
                )}
              </article>
            ))}
          </div>
        </>
      )}
    </section>
  )
}
