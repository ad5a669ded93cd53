import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { extname, join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { failure, type Clock } from '../envelope.js'
import { addMethodNotAllowed } from '../errors.js'

/**
 * The console's page: only our own scripts, styles and API calls; no inline code, no framing, no
 * forms posting elsewhere. The page never needs more, so anything else is an injection.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
}

/** esbuild's `[name]-[hash]` names: the content decides the name, so the file may be cached forever. */
const HASHED = /-[A-Z0-9]{8}\.[a-z0-9]+(\.map)?$/

interface Asset {
  readonly body: Buffer
  readonly gzip: Buffer | null
  readonly type: string
  readonly etag: string
  readonly immutable: boolean
}

export interface ConsoleOptions {
  readonly now: Clock
  /** The built console (`npm run build`). Default: `dist/console`, found from this file in dist/ or src/. */
  readonly dir?: string
}

function defaultDir(): string {
  const besideDist = resolve(import.meta.dirname, '../../console')
  if (existsSync(join(besideDist, 'index.html'))) return besideDist
  return resolve(import.meta.dirname, '../../../dist/console')
}

/** Reads the whole build once at start (a few hundred KB): serving is then a map lookup. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  if (!existsSync(join(dir, 'index.html'))) return assets
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)]
    if (type === undefined) continue
    const body = readFileSync(join(dir, name))
    const compressed = body.length > 1024 && !type.startsWith('image/png') ? gzipSync(body) : null
    assets.set(name, {
      body,
      gzip: compressed !== null && compressed.length < body.length ? compressed : null,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      immutable: name !== 'index.html' && HASHED.test(name),
    })
  }
  return assets
}

/**
 * `GET /console/`: the web console, static files built from `console/`. The hashed JS and CSS are
 * cached for a year (`immutable`); index.html is revalidated on every load (`no-cache` + ETag), so a
 * new build is picked up at once while the assets it names are never fetched twice.
 */
export function registerConsoleRoutes(app: FastifyInstance, options: ConsoleOptions): void {
  const { now } = options
  const assets = loadAssets(options.dir ?? defaultDir())

  const send = (request: FastifyRequest, reply: FastifyReply, name: string): FastifyReply => {
    const asset = assets.get(name)
    if (asset === undefined) {
      if (assets.size === 0)
        return reply
          .code(503)
          .send(failure(now, 'The console is not built: run `npm run build` (npm start does it) and restart'))
      return reply.code(404).send(failure(now, `No console file ${JSON.stringify(name)}`))
    }
    reply
      .header('content-type', asset.type)
      .header('etag', asset.etag)
      .header('vary', 'accept-encoding')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('cross-origin-resource-policy', 'same-origin')
      .header('x-frame-options', 'DENY')
      .header('content-security-policy', CONSOLE_CSP)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    const acceptsGzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))
    if (asset.gzip !== null && acceptsGzip) return reply.header('content-encoding', 'gzip').send(asset.gzip)
    return reply.send(asset.body)
  }

  // The page's relative asset URLs need the trailing slash.
  app.get('/console', async (_request, reply) => reply.redirect('/console/', 308))
  app.get('/console/', async (request, reply) => send(request, reply, 'index.html'))
  app.get<{ Params: { file: string } }>('/console/:file', async (request, reply) =>
    send(request, reply, request.params.file),
  )
  for (const url of ['/console', '/console/', '/console/:file']) addMethodNotAllowed(app, now, url, ['GET'])
}
