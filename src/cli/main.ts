import { createRequire } from 'node:module'
import { Command } from 'commander'
import { openStore } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { createKey, listKeys, revokeKey } from './commands/keys.js'
import { createConsoleOutput } from './output.js'

// Commander wiring only: each action parses nothing itself and calls one command function.

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string }
const out = createConsoleOutput()

/**
 * Opens (and migrates) the database the server uses, and always closes it. `DATABASE_URL` is read
 * here rather than through the server's `loadConfig` because the CLI may not import server code;
 * `openStore` holds the shared default (sqlite:./data/traitbase.db) and URL rules.
 */
async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const url = process.env.DATABASE_URL?.trim()
  const store = await openStore(url === undefined || url === '' ? undefined : url)
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

/** Wraps an action so a failure prints one line on stderr and exits 1, without a stack trace. */
function run<A extends unknown[]>(action: (...args: A) => Promise<unknown>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args)
    } catch (error) {
      out.err(`error: ${error instanceof Error ? error.message : String(error)}`)
      if (process.env.TRAITBASE_DEBUG === '1' && error instanceof Error && error.stack) out.err(error.stack)
      process.exitCode = 1
    }
  }
}

const program = new Command('traitbase')
  .description('traitbase: the User Attribute Upload API, self-hosted')
  .version(version)
  .showHelpAfterError()

const keys = program.command('keys').description('manage project API keys (uses DATABASE_URL, like the server)')

keys
  .command('create')
  .description('create a key (and the project if new); the secret is the last line of stdout, shown only once')
  .requiredOption('--project <name>', 'project name')
  .option('--label <text>', 'label shown by "keys list"')
  .option('--scopes <list>', 'comma-separated scopes', 'profiles:write,profiles:read')
  .action(
    run((opts: { project: string; label?: string; scopes: string }) =>
      withStore((store) => createKey({ store, out, ...opts })),
    ),
  )

keys
  .command('list')
  .description("list a project's keys (never their secrets)")
  .requiredOption('--project <name>', 'project name')
  .option('--json', 'print a JSON array')
  .action(run((opts: { project: string; json?: boolean }) => withStore((store) => listKeys({ store, out, ...opts }))))

keys
  .command('revoke')
  .description('revoke a key; the server refuses it from the next request on')
  .argument('<KEY_ID>', 'key id as shown by "keys list"')
  .action(run((keyId: string) => withStore((store) => revokeKey({ store, out, keyId }))))

await program.parseAsync(process.argv)
