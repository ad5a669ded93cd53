import { compareCodePoints } from '../../src/core/text.js'
import type { AttributePatch, ProfilePatch, UploadBatch } from '../../src/core/upload.js'
import { createRandom, createZipf, scramble32 } from './random.js'

/**
 * Benchmark data shaped like the storage measurements note: random-looking user ids and 10
 * attributes (plan, country Zipf, city Zipf over 2,000, language, source, is_vip 5 % true, age
 * 18–80, ltv exponential with decimals, near-unique email, signup_date), 2 % of cells `""`.
 */
export const BENCH_FIELDS = [
  'user_id',
  'plan',
  'country',
  'city',
  'language',
  'source',
  'is_vip',
  'age',
  'ltv',
  'email',
  'signup_date',
] as const

/** Share of attribute cells sent as `""` (the spec's empty value). */
export const EMPTY_SHARE = 0.02
/** Users per load request (spec §2 maximum). */
export const USERS_PER_REQUEST = 100
/** Of each load request's rows, how many create new users; the rest update random existing ones. */
export const NEW_USERS_PER_REQUEST = 50

const PLANS = ['free', 'basic', 'pro', 'enterprise'] as const
const PLAN_CDF = [0.6, 0.85, 0.97, 1]
const COUNTRIES = 'US JP CN DE GB FR IN BR KR CA IT ES AU MX NL ID TR SA CH SE PL BE TW AR TH AT NO IL SG DK'.split(' ')
const LANGUAGES = ['en', 'ja', 'zh', 'es', 'de', 'fr', 'pt', 'ko', 'it', 'ru', 'ar', 'hi']
const SOURCES = ['organic', 'ads', 'email', 'referral', 'social', 'partner', 'direct', 'affiliate', 'events', 'other']
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example', 'corp.example']
const CITY_COUNT = 2000
const SIGNUP_START = Date.UTC(2019, 0, 1)
const SIGNUP_DAYS = 2891 // 2019-01-01 .. 2026-11-30
const LTV_MEAN = 120

const countryRank = createZipf(COUNTRIES.length)
const cityRank = createZipf(CITY_COUNT)

export type CellValue = string | number | boolean

/** The id of user number `i`: unique for every i below 2^32, random-looking so inserts scatter like real ids. */
export function userIdOf(i: number): string {
  return `u${scramble32(i).toString(16).padStart(8, '0')}`
}

/** One row in `BENCH_FIELDS` order. Numbers and booleans stay JSON-typed, as clients send them. */
export function generateRow(userId: string, random: () => number): CellValue[] {
  const u = random()
  const plan = PLANS[PLAN_CDF.findIndex((p) => u < p)] ?? 'free'
  const attributes: CellValue[] = [
    plan,
    COUNTRIES[countryRank(random)] as string,
    `city-${String(cityRank(random)).padStart(4, '0')}`,
    LANGUAGES[Math.floor(random() * LANGUAGES.length)] as string,
    SOURCES[Math.floor(random() * SOURCES.length)] as string,
    random() < 0.05,
    18 + Math.floor(random() * 63),
    Math.round(-Math.log(1 - random()) * LTV_MEAN * 100) / 100,
    `${userId}.${Math.floor(random() * 100)}@${DOMAINS[Math.floor(random() * DOMAINS.length)] as string}`,
    new Date(SIGNUP_START + Math.floor(random() * SIGNUP_DAYS) * 86_400_000).toISOString().slice(0, 10),
  ]
  for (let c = 0; c < attributes.length; c++) if (random() < EMPTY_SHARE) attributes[c] = ''
  return [userId, ...attributes]
}

/** The id of user number `i` in user_id order (same shape as {@link userIdOf}): inserts append. */
export function sequentialUserIdOf(i: number): string {
  return `u${i.toString(16).padStart(8, '0')}`
}

/**
 * Users `start .. start+count-1` as one store batch, for preloading through `store.applyUpload`
 * with batches far larger than the HTTP limit. `""` cells become `null`, as `parseUploadBody` does.
 * `sequentialIds`: ids in user_id order ({@link sequentialUserIdOf}), so a preload of tens of
 * millions appends to the table instead of writing random pages.
 */
export function generatePreloadBatch(start: number, count: number, seed: number, sequentialIds = false): UploadBatch {
  const random = createRandom(seed ^ scramble32(start))
  const patches: ProfilePatch[] = []
  for (let i = start; i < start + count; i++) {
    const row = generateRow(sequentialIds ? sequentialUserIdOf(i) : userIdOf(i), random)
    const attributes = Object.create(null) as AttributePatch
    for (let c = 1; c < BENCH_FIELDS.length; c++) {
      const v = row[c] as CellValue
      attributes[BENCH_FIELDS[c] as string] = v === '' ? null : String(v)
    }
    patches.push({ userId: row[0] as string, attributes })
  }
  patches.sort((a, b) => compareCodePoints(a.userId, b.userId))
  return { patches, rows: count }
}

export interface LoadBody {
  readonly field_name: readonly string[]
  readonly values: CellValue[][]
}

/**
 * Request number `k` of the load: the same body whichever process builds it and in whatever
 * order, so the HTTP run and the direct-store run write the same batches. Its first
 * NEW_USERS_PER_REQUEST rows create users `preload + k·50 …`; the others update users picked at
 * random among those that exist by then (preloaded, or created by earlier requests).
 */
export function generateLoadBody(k: number, preload: number, seed: number): LoadBody {
  const random = createRandom((seed ^ scramble32(k + 0x9e3779b9)) >>> 0)
  const existing = preload + k * NEW_USERS_PER_REQUEST
  const values: CellValue[][] = []
  for (let j = 0; j < USERS_PER_REQUEST; j++) {
    // Request 0 on an empty store has no earlier users: its updates hit its own new users.
    const index =
      j < NEW_USERS_PER_REQUEST ? existing + j : Math.floor(random() * Math.max(existing, NEW_USERS_PER_REQUEST))
    values.push(generateRow(userIdOf(index), random))
  }
  return { field_name: BENCH_FIELDS, values }
}
