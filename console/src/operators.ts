/**
 * The query API's operators and which field types offer them: one table, so a new operator or type
 * (the date operators of #10) is a row here, not a change to the builder.
 */

/** What the Value control looks like and how its text becomes the API's `value`. */
export type ValueKind = 'none' | 'text' | 'number' | 'list' | 'date' | 'date-range' | 'relative'

export type FieldType = 'string' | 'number' | 'boolean' | 'date' | 'mixed'

export interface OperatorSpec {
  readonly op: string
  readonly label: string
  readonly value: ValueKind
  /** Field types that offer it. */
  readonly types: readonly FieldType[]
}

const ANY_TYPE: readonly FieldType[] = ['string', 'number', 'boolean', 'date', 'mixed']
const TEXTUAL: readonly FieldType[] = ['string', 'number', 'boolean', 'date', 'mixed']

export const OPERATORS: readonly OperatorSpec[] = [
  { op: 'eq', label: 'is', value: 'text', types: ANY_TYPE },
  { op: 'neq', label: 'is not', value: 'text', types: ANY_TYPE },
  { op: 'in', label: 'is one of', value: 'list', types: ANY_TYPE },
  { op: 'not_in', label: 'is none of', value: 'list', types: ANY_TYPE },
  { op: 'contains', label: 'contains', value: 'text', types: TEXTUAL },
  { op: 'starts_with', label: 'starts with', value: 'text', types: TEXTUAL },
  { op: 'gt', label: '>', value: 'number', types: ['number', 'mixed', 'string'] },
  { op: 'gte', label: '≥', value: 'number', types: ['number', 'mixed', 'string'] },
  { op: 'lt', label: '<', value: 'number', types: ['number', 'mixed', 'string'] },
  { op: 'lte', label: '≤', value: 'number', types: ['number', 'mixed', 'string'] },
  { op: 'before', label: 'is before', value: 'date', types: ['date'] },
  { op: 'after', label: 'is after', value: 'date', types: ['date'] },
  { op: 'between', label: 'is between', value: 'date-range', types: ['date'] },
  { op: 'within_last', label: 'is within the last', value: 'relative', types: ['date'] },
  { op: 'more_than_ago', label: 'is more than … ago', value: 'relative', types: ['date'] },
  { op: 'within_next', label: 'is within the next', value: 'relative', types: ['date'] },
  { op: 'exists', label: 'is set', value: 'none', types: ANY_TYPE },
  { op: 'not_exists', label: 'is not set', value: 'none', types: ANY_TYPE },
]

export const RELATIVE_UNITS = ['minutes', 'hours', 'days', 'weeks', 'months'] as const

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d{1,2})?$/

/**
 * The catalog's `type` when the server reports one (#10); before that, a guess from the top values:
 * numbers when every top value is one (the server's own number rule), else string.
 */
export function fieldType(attribute: { type?: string; top_values: { value: string }[] | null } | undefined): FieldType {
  const reported = attribute?.type
  if (reported === 'string' || reported === 'number' || reported === 'boolean' || reported === 'date') return reported
  if (reported === 'mixed') return 'mixed'
  const top = attribute?.top_values
  if (top && top.length > 0 && top.every((v) => NUMBER.test(v.value))) return 'number'
  return 'string'
}

export function operatorsFor(type: FieldType): OperatorSpec[] {
  return OPERATORS.filter((spec) => spec.types.includes(type))
}

export function operatorSpec(op: string): OperatorSpec | undefined {
  return OPERATORS.find((spec) => spec.op === op)
}

export function isNumberText(text: string): boolean {
  return NUMBER.test(text.trim())
}
