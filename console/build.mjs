// Builds the console into dist/console: content-hashed JS and CSS (cached forever by the server) and an
// index.html that names them (never cached). Run by `npm run build`.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import process from 'node:process'
import { build } from 'esbuild'

const root = import.meta.dirname
const outdir = join(root, '..', 'dist', 'console')
await rm(outdir, { recursive: true, force: true })
await mkdir(outdir, { recursive: true })

const result = await build({
  entryPoints: [join(root, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  outdir,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
})

const outputs = Object.keys(result.metafile.outputs).map((file) => basename(file))
const script = outputs.find((file) => file.endsWith('.js'))
const style = outputs.find((file) => file.endsWith('.css'))
if (!script || !style) throw new Error(`console build: expected one .js and one .css, got ${outputs.join(', ')}`)

// Relative URLs: the page lives at /console/, so the assets resolve to /console/<file>.
await writeFile(
  join(outdir, 'index.html'),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>traitbase console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${style}">
<script type="module" src="${script}"></script>
</head>
<body>
<noscript>The traitbase console needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`,
)
const files = await readdir(outdir)
process.stdout.write(`console: ${files.length} files in dist/console\n`)
