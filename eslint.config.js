import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const serverPackages = ['fastify', 'fastify/*', '@fastify/*', 'pg', 'better-sqlite3', 'prom-client', 'pino']

/** Layer rules: core ← storage ← server, core ← sdk ← cli (cli may also use storage for keys). */
const layer = (files, patterns) => ({
  files,
  // Tests beside the code use node:test and node:assert; the layer rules are about shipped code.
  ignores: ['**/*.test.ts'],
  rules: { 'no-restricted-imports': ['error', { patterns }] },
})

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '.bench/**', 'test/browser/screenshots/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  layer(
    ['src/core/**'],
    [
      { group: ['../storage/*', '../server/*', '../sdk/*', '../cli/*'], message: 'core imports nothing' },
      { group: [...serverPackages, 'node:*', 'commander', 'csv-parse', 'csv-parse/*'], message: 'core is pure' },
    ],
  ),
  layer(
    ['src/storage/**'],
    [
      {
        group: ['**/server/*', '**/sdk/*', '**/cli/*', 'fastify', '@fastify/*'],
        message: 'storage sits below server, sdk and cli',
      },
    ],
  ),
  layer(
    ['src/sdk/**'],
    [
      { group: ['**/server/*', '**/storage/*', '**/cli/*'], message: 'the SDK depends on core only' },
      {
        group: [...serverPackages, 'commander', 'csv-parse', 'csv-parse/*', 'node:*'],
        message: 'the SDK has zero runtime deps',
      },
    ],
  ),
  layer(
    ['src/cli/**'],
    [{ group: ['**/server/*', 'fastify', '@fastify/*'], message: 'the CLI talks HTTP through the SDK' }],
  ),
  layer(['src/server/**'], [{ group: ['**/sdk/*', '**/cli/*'], message: 'the server does not import the SDK or CLI' }]),
)
