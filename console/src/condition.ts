/** The segment builder's model and its translation to and from the query API's condition JSON. */
import { isNumberText, operatorSpec, RELATIVE_UNITS } from './operators.js'

export type Match = 'all' | 'any' | 'none'

export interface RuleNode {
  readonly kind: 'rule'
  readonly id: number
  field: string
  op: string
  /** Text as typed: the value, the list (comma-separated), the date, the range's start or the amount. */
  value: string
  /** The range's end (`between`) or the unit (relative operators). */
  value2: string
}

export interface GroupNode {
  readonly kind: 'group'
  readonly id: number
  match: Match
  children: Node[]
}

export type Node = RuleNode | GroupNode

let nextId = 1
export const newId = (): number => nextId++

export function newRule(field = '', op = 'eq'): RuleNode {
  return { kind: 'rule', id: newId(), field, op, value: '', value2: op === 'between' ? '' : 'days' }
}

export function newGroup(match: Match = 'all', children: Node[] = [newRule()]): GroupNode {
  return { kind: 'group', id: newId(), match, children }
}

export interface Translation {
  /** The API condition, or null while any rule is incomplete. */
  readonly where: unknown
  /** Per node id, what to fix, shown next to that node. */
  readonly errors: ReadonlyMap<number, string>
}

export function toWhere(root: GroupNode): Translation {
  const errors = new Map<number, string>()
  const where = translate(root, errors)
  return { where: errors.size === 0 ? where : null, errors }
}

function translate(node: Node, errors: Map<number, string>): unknown {
  if (node.kind === 'group') {
    const children = node.children.map((child) => translate(child, errors))
    if (node.match === 'none') return { not: { any: children } }
    return { [node.match]: children }
  }
  const spec = operatorSpec(node.op)
  if (node.field === '') {
    errors.set(node.id, 'Choose a field')
    return null
  }
  if (!spec) {
    errors.set(node.id, `Unknown operator "${node.op}"`)
    return null
  }
  const leaf = { field: node.field, op: node.op }
  const text = node.value.trim()
  switch (spec.value) {
    case 'none':
      return leaf
    case 'text':
      if (node.value === '') errors.set(node.id, 'Enter a value')
      return { ...leaf, value: node.value }
    case 'number':
      if (!isNumberText(text)) errors.set(node.id, 'Enter a number, like 42 or -3.5')
      return { ...leaf, value: Number(text) }
    case 'list': {
      const values = node.value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '')
      if (values.length === 0) errors.set(node.id, 'Enter one or more values, separated by commas')
      else if (values.length > 1000) errors.set(node.id, 'At most 1,000 values')
      return { ...leaf, value: values }
    }
    case 'date':
      if (text === '') errors.set(node.id, 'Enter a date, like 2025-03-01')
      return { ...leaf, value: text }
    case 'date-range': {
      const to = node.value2.trim()
      if (text === '' || to === '') errors.set(node.id, 'Enter both dates')
      return { ...leaf, value: { from: text, to } }
    }
    case 'relative': {
      const amount = Number(text)
      if (!/^\d+$/.test(text) || amount <= 0) errors.set(node.id, 'Enter a whole number, like 30')
      const unit = (RELATIVE_UNITS as readonly string[]).includes(node.value2) ? node.value2 : 'days'
      return { ...leaf, value: { amount, unit } }
    }
  }
}

/** The builder model for an API condition, or null when it has a shape the builder cannot show. */
export function fromWhere(where: unknown): GroupNode | null {
  const node = parse(where)
  if (node === null) return null
  return node.kind === 'group' ? node : newGroup('all', [node])
}

function parse(where: unknown): Node | null {
  if (typeof where !== 'object' || where === null || Array.isArray(where)) return null
  const c = where as Record<string, unknown>
  const keys = Object.keys(c)
  if (keys.length === 1 && (keys[0] === 'all' || keys[0] === 'any') && Array.isArray(c[keys[0]])) {
    const children = (c[keys[0]] as unknown[]).map(parse)
    if (children.some((child) => child === null)) return null
    return { kind: 'group', id: newId(), match: keys[0], children: children as Node[] }
  }
  if (keys.length === 1 && keys[0] === 'not') {
    const inner = c.not as Record<string, unknown> | null
    if (inner && typeof inner === 'object' && Array.isArray(inner.any) && Object.keys(inner).length === 1) {
      const group = parse(inner)
      return group && group.kind === 'group' ? { ...group, match: 'none' } : null
    }
    const single = parse(inner)
    return single && single.kind === 'rule' ? { kind: 'group', id: newId(), match: 'none', children: [single] } : null
  }
  if (typeof c.field !== 'string' || typeof c.op !== 'string') return null
  const spec = operatorSpec(c.op)
  if (!spec) return null
  const rule: RuleNode = { kind: 'rule', id: newId(), field: c.field, op: c.op, value: '', value2: 'days' }
  const v = c.value
  switch (spec.value) {
    case 'none':
      break
    case 'text':
    case 'number':
    case 'date':
      rule.value = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : ''
      break
    case 'list':
      rule.value = Array.isArray(v) ? v.map(String).join(', ') : ''
      break
    case 'date-range': {
      const r = (v ?? {}) as { from?: unknown; to?: unknown }
      rule.value = String(r.from ?? '')
      rule.value2 = String(r.to ?? '')
      break
    }
    case 'relative': {
      const r = (v ?? {}) as { amount?: unknown; unit?: unknown }
      rule.value = String(r.amount ?? '')
      rule.value2 = String(r.unit ?? 'days')
      break
    }
  }
  return rule
}

/**
 * Maps a server error's place (`where.all[1].any[0].op: …`) to the builder node it names, so the
 * message shows next to the condition that caused it.
 */
export function nodeAtPath(root: GroupNode, message: string): number | null {
  const match = /^where((?:\.(?:all|any|not)(?:\[\d+\])?)*)/.exec(message)
  if (!match) return null
  let node: Node = root
  let steps = [...(match[1] ?? '').matchAll(/\.(all|any|not)(?:\[(\d+)\])?/g)]
  if (root.match === 'none') steps = steps.slice(1) // {not:{any:[…]}}: the `not` step is the group itself
  for (const step of steps) {
    if (node.kind !== 'group' || step[2] === undefined) break
    const child: Node | undefined = node.children[Number(step[2])]
    if (!child) break
    node = child
  }
  return node.id
}
