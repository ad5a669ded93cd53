import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

/** Debian's Chromium (`apt-get install chromium`); CHROMIUM_PATH overrides. Nothing is downloaded. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser suites cannot run here, or undefined when they can. In CI (`CI=true`) a missing
 * Chromium is a failure, not a skip: the console would otherwise ship untested.
 */
export function browserUnavailable(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  const reason = `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
  if (process.env.CI === 'true') throw new Error(`${reason}: the browser tests must run in CI`)
  return reason
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // A fresh temporary profile per launch (Playwright's default); no network beyond the test server.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

export const DESKTOP = { width: 1280, height: 800 } as const
export const PHONE = { width: 390, height: 844 } as const

export const SCREENSHOTS = resolve(import.meta.dirname, 'screenshots')

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: { target: unknown[] }[]
}

/**
 * Runs axe-core in the page and fails on any serious or critical violation. It is evaluated through
 * the DevTools protocol, which the page's CSP (script-src 'self') rightly does not let a <script> do.
 */
export async function assertAccessible(page: Page, label: string): Promise<void> {
  // Page-side code is given as text: this file is compiled for Node, without the DOM's types.
  if (!(await page.evaluate<boolean>("'axe' in window"))) await page.evaluate(axeSource)
  const violations = await page.evaluate<AxeViolation[]>(
    'axe.run().then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => ({ target: n.target })) })))',
  )
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  assert.deepEqual(bad, [], `${label}: axe-core found serious violations: ${JSON.stringify(bad, null, 1)}`)
}

/**
 * Saves the page at 1280×800 and 390×844 (git-ignored, for people to look at) and runs axe-core at
 * both sizes; the page is left at desktop size.
 */
export async function capture(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  for (const [size, viewport] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    await page.setViewportSize(viewport)
    await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => resolve(null)))')
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true })
    await assertAccessible(page, `${name} at ${viewport.width}×${viewport.height}`)
    if (size === 'phone') {
      // Nothing may push the page sideways on a phone: only tables and code scroll inside their box.
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')
      assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than a 390px phone`)
    }
  }
  await page.setViewportSize(DESKTOP)
}
