import type { ComponentChildren } from 'preact'
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import { formatCount } from './format.js'

/**
 * Focus on mount: the `autofocus` attribute only works on page load, not for a form that appears
 * after a click, where keyboard users need the focus moved for them. A layout effect, so the focus
 * moves in the same task as the render: with `useEffect` it moved a frame later, and keys typed
 * in between (a fast typist, a script) went to the page instead of the field.
 */
export function useAutoFocus<T extends HTMLElement>() {
  const ref = useRef<T>(null)
  useLayoutEffect(() => ref.current?.focus(), [])
  return ref
}

/** A modal confirmation on the native <dialog>: focus is trapped and Escape cancels, for free. */
export function ConfirmDialog(props: {
  title: string
  children: ComponentChildren
  confirmLabel: string
  danger?: boolean
  busy?: boolean
  error?: string | null
  onConfirm: () => void
  onCancel: () => void
}) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    if (dialog && !dialog.open) dialog.showModal()
    return () => dialog?.close()
  }, [])
  return (
    <dialog
      ref={ref}
      aria-labelledby="dialog-title"
      onCancel={(e) => {
        e.preventDefault()
        props.onCancel()
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault()
          props.onConfirm()
        }}
      >
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
        {props.error ? (
          <p class="error" role="alert">
            {props.error}
          </p>
        ) : null}
        <div class="actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? 'danger' : 'primary'} disabled={props.busy}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  )
}

export function CopyButton(props: { text: string; label?: string; describedBy?: string }) {
  const [copied, setCopied] = useState<null | 'ok' | 'failed'>(null)
  useEffect(() => {
    if (copied === null) return
    const timer = setTimeout(() => setCopied(null), 2000)
    return () => clearTimeout(timer)
  }, [copied])
  return (
    <button
      type="button"
      class="copy"
      aria-describedby={props.describedBy}
      onClick={() => {
        navigator.clipboard.writeText(props.text).then(
          () => setCopied('ok'),
          () => setCopied('failed'),
        )
      }}
    >
      {copied === 'ok' ? 'Copied' : copied === 'failed' ? 'Select and copy by hand' : (props.label ?? 'Copy')}
    </button>
  )
}

export function EmptyState(props: { title: string; children: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{props.title}</p>
      <div>{props.children}</div>
    </div>
  )
}

export function ErrorText(props: { id?: string; children: ComponentChildren }) {
  if (!props.children) return null
  return (
    <p class="error" id={props.id} role="alert">
      {props.children}
    </p>
  )
}

/** Horizontal bars, drawn by hand: value labels on the left, counts on the right, scaled to the largest. */
export function BarChart(props: { title: string; bars: { label: string; value: number }[]; total?: number }) {
  const rowHeight = 26
  // About the width it is drawn at in a card, so the 13px text stays 13px.
  const width = 440
  const countWidth = 70
  // As wide as the longest (shortened) label needs, in 13px monospace (about 8px a character).
  const longest = Math.max(...props.bars.map((b) => Math.min(18, Math.max(b.label.length, 7))))
  const labelWidth = Math.min(160, longest * 8 + 14)
  const max = Math.max(1, ...props.bars.map((b) => b.value))
  const height = props.bars.length * rowHeight + 4
  const barSpace = width - labelWidth - countWidth
  const shorten = (text: string) => (text.length > 18 ? `${text.slice(0, 17)}…` : text)
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${props.title}: ${props.bars.map((b) => `${b.label} ${formatCount(b.value)}`).join(', ')}`}
        preserveAspectRatio="xMinYMin meet"
      >
        {props.bars.map((bar, i) => {
          const y = i * rowHeight + 2
          const w = Math.max(2, (bar.value / max) * barSpace)
          return (
            <g key={bar.label}>
              <title>{`${bar.label}: ${formatCount(bar.value)} users`}</title>
              <text x={labelWidth - 8} y={y + rowHeight / 2 + 5} text-anchor="end" class="bar-label">
                {shorten(bar.label === '' ? '(empty)' : bar.label)}
              </text>
              <rect x={labelWidth} y={y + 3} width={w} height={rowHeight - 8} rx="3" class="bar" />
              <text x={labelWidth + w + 6} y={y + rowHeight / 2 + 5} class="bar-count">
                {formatCount(bar.value)}
              </text>
            </g>
          )
        })}
      </svg>
    </figure>
  )
}
