import { createRequire } from 'node:module'
import { Command } from 'commander'
import { existsSync } from 'node:fs'
import { DEFAULT_DATABASE_URL, openStore, parseDatabaseUrl } from '../storage/open-store.js'
import type { Store } from '../storage/store.js'
import { createKey, listKeys, revokeKey } from './commands/keys.js'
import {
  createAdminToken,
  listAdminTokens,
  readPassword,
  revokeAdminToken,
  setAdminPassword,
} from './commands/admin.js'
import { abortOnInterrupt, EXIT_USAGE, uploadFile, type UploadCommandOptions } from './commands/upload.js'
import { countSegment, exportSegment } from './commands/segment.js'
import {
  indexAttributes,
  isolateProject,
  NeedsCitusError,
  projectTimeZone,
  setRateLimit,
  spreadProject,
} from './commands/projects.js'
import { createConsoleOutput } from './output.js'

// Commander wiring only: each action parses nothing itself and calls one command function.

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string }
const out = createConsoleOutput()

/**
 * Opens (and migrates) the database the server uses, and always closes it. `DATABASE_URL` is read
 * here rather than through the server's `loadConfig` because the CLI may not import server code;
 * `openStore` holds the shared default (sqlite:./data/traitbase.db) and URL rules.
 */
async function withStore<T>(fn: (store: Store) => Promise<T>, options: { mustExist?: boolean } = {}): Promise<T> {
  const url = process.env.DATABASE_URL?.trim() || DEFAULT_DATABASE_URL
  const target = parseDatabaseUrl(url)
  // Reading or revoking keys must not create an empty database where there was none (a mistyped path).
  if (options.mustExist === true && target.kind === 'sqlite' && target.filename !== ':memory:') {
    if (!existsSync(target.filename)) {
      throw new Error(`no database at ${target.filename}: check DATABASE_URL (the server or "keys create" makes it)`)
    }
  }
  const store = await openStore(url)
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
  // Bad usage anywhere (unknown command or option, a missing required option or argument) exits 2,
  // as documented; commander says 1. Subcommands inherit this.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE))

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
  .action(
    run((opts: { project: string; json?: boolean }) =>
      withStore((store) => listKeys({ store, out, ...opts }), { mustExist: true }),
    ),
  )

keys
  .command('revoke')
  .description('revoke a key; the server refuses it from the next request on')
  .argument('<KEY_ID>', 'key id as shown by "keys list"')
  .action(run((keyId: string) => withStore((store) => revokeKey({ store, out, keyId }), { mustExist: true })))

const admin = program
  .command('admin')
  .description('the console and admin API: password and admin tokens (uses DATABASE_URL, like the server)')

admin
  .command('set-password')
  .description('set the console password (asked twice on a terminal, else read from stdin); signs every session out')
  .action(
    run(async () => {
      const password = await readPassword(process.stdin, process.stderr)
      await withStore((store) => setAdminPassword({ store, out, password }))
    }),
  )

const token = admin.command('token').description('admin tokens (tba_…) for scripts that call /admin/api')

token
  .command('create')
  .description('create an admin token; the secret is the last line of stdout, shown only once')
  .option('--label <text>', 'label shown by "admin token list"')
  .action(run((opts: { label?: string }) => withStore((store) => createAdminToken({ store, out, ...opts }))))

token
  .command('list')
  .description('list admin tokens (never their secrets)')
  .option('--json', 'print a JSON array')
  .action(
    run((opts: { json?: boolean }) =>
      withStore((store) => listAdminTokens({ store, out, ...opts }), { mustExist: true }),
    ),
  )

token
  .command('revoke')
  .description('revoke an admin token')
  .argument('<TOKEN_ID>', 'id as shown by "admin token list"')
  .action(run((id: string) => withStore((store) => revokeAdminToken({ store, out, id }), { mustExist: true })))

const projects = program.command('projects').description('project settings (uses DATABASE_URL, like the server)')

projects
  .command('rate-limit')
  .description("set a project's requests per minute per key (0 = unlimited, default = the server's RATE_LIMIT)")
  .requiredOption('--project <name>', 'project name')
  .argument('<LIMIT>', 'requests per minute per key, 0, or "default"')
  .action(
    run((limit: string, opts: { project: string }) =>
      withStore((store) => setRateLimit({ store, out, project: opts.project, limit }), { mustExist: true }),
    ),
  )

projects
  .command('isolate')
  .description(
    'Citus only: give a big project a shard of its own on the least loaded worker (its writes wait meanwhile)',
  )
  .requiredOption('--project <name>', 'project name')
  .action(async ({ project }: { project: string }) => {
    try {
      await withStore((store) => isolateProject({ store, out, project }), { mustExist: true })
    } catch (error) {
      out.err(`error: ${error instanceof Error ? error.message : String(error)}`)
      process.exitCode = error instanceof NeedsCitusError ? EXIT_USAGE : 1
    }
  })

projects
  .command('spread')
  .description(
    'Citus only: spread an empty project over N buckets on every worker, for projects too big for one (see docs/scaling.md)',
  )
  .requiredOption('--project <name>', 'project name')
  .requiredOption('--buckets <n>', 'buckets (2 or more; at least the number of workers)')
  .action(async ({ project, buckets }: { project: string; buckets: string }) => {
    try {
      await withStore((store) => spreadProject({ store, out, project, buckets }), { mustExist: true })
    } catch (error) {
      out.err(`error: ${error instanceof Error ? error.message : String(error)}`)
      process.exitCode = error instanceof NeedsCitusError ? EXIT_USAGE : 1
    }
  })

projects
  .command('index')
  .description(
    "list a project's attribute indexes, or build (--drop: drop) one per ATTRIBUTE: segment queries " +
      'answered by the database (before the in-memory index is ready) then use it instead of scanning; ' +
      "each costs that project's uploads (on SQLite a lot: see the README). SQLite: other writers wait while it builds",
  )
  .requiredOption('--project <name>', 'project name')
  .option('--kind <kind>', 'text (eq, neq, in, not_in, exists, not_exists) or number (gt, gte, lt, lte)', 'text')
  .option('--drop', 'drop the indexes instead of building them')
  .argument('[ATTRIBUTE...]', 'attribute names')
  .action(
    run((attributes: string[], opts: { project: string; kind: string; drop?: boolean }) =>
      withStore((store) => indexAttributes({ store, out, attributes, ...opts }), { mustExist: true }),
    ),
  )

// Listed for --help only: bin/traitbase.js hands `serve` to the server before this parser runs.
program
  .command('serve')
  .description('run the server (configuration from the environment); --workers N runs N processes (PostgreSQL)')
  .option('--workers <n>', 'server processes on this machine (default $WEB_CONCURRENCY or 1)')
  .action(() => {
    out.err('error: run "traitbase serve" through the traitbase binary (bin/traitbase.js)')
    process.exitCode = EXIT_USAGE
  })

projects
  .command('timezone')
  .description(
    "print the project's time zone, or set it to ZONE (an IANA name such as Asia/Tokyo): bare dates and whole-day units of segment conditions use it",
  )
  .requiredOption('--project <name>', 'project name')
  .argument('[ZONE]', 'IANA time zone name, e.g. UTC, Europe/Paris, Asia/Tokyo')
  .action(
    run((zone: string | undefined, opts: { project: string }) =>
      withStore(
        (store) =>
          projectTimeZone({ store, out, project: opts.project, ...(zone === undefined ? {} : { timeZone: zone }) }),
        {
          mustExist: true,
        },
      ),
    ),
  )

const segment = program
  .command('segment')
  .description(
    'count or export the users matching a condition (over HTTP: --url/--key or TRAITBASE_URL/TRAITBASE_API_KEY)',
  )

segment
  .command('count')
  .description('print the number of users matching --where')
  .requiredOption('--where <json>', 'condition, e.g. \'{"field":"plan","op":"eq","value":"pro"}\'')
  .option('--url <url>', 'server base URL (default $TRAITBASE_URL)')
  .option('--key <key>', 'API key with profiles:read (default $TRAITBASE_API_KEY)')
  .option('--json', 'print {"count":N}')
  .action(async (opts: { where: string; url?: string; key?: string; json?: boolean }) => {
    process.exitCode = await countSegment(opts, { out, env: process.env })
  })

segment
  .command('export')
  .description('stream every matching user as CSV or NDJSON to stdout or --output')
  .option('--where <json>', 'condition (or --segment)')
  .option('--segment <id>', 'saved segment id (or --where)')
  .option('--fields <list>', 'comma-separated attribute columns (default: all)')
  .option('--format <csv|ndjson>', 'output format', 'csv')
  .option('--output <file>', 'write here instead of stdout')
  .option('--url <url>', 'server base URL (default $TRAITBASE_URL)')
  .option('--key <key>', 'API key with profiles:read (default $TRAITBASE_API_KEY)')
  .action(async (opts: Record<string, string | undefined>) => {
    process.exitCode = await exportSegment(opts, { out, env: process.env })
  })

program
  .command('upload')
  .description(
    'upload a CSV or JSONL file of user attributes, resumably (--url/--key or TRAITBASE_URL/TRAITBASE_API_KEY)',
  )
  .argument('<FILE>', 'CSV with a header row including user_id, or JSONL with one object per line')
  .option('--url <url>', 'server base URL (default $TRAITBASE_URL)')
  .option('--key <key>', 'API key with profiles:write (default $TRAITBASE_API_KEY)')
  .option('--format <csv|jsonl>', 'input format (default: from the extension .csv/.tsv/.jsonl/.ndjson)')
  .option('--delimiter <char>', 'CSV delimiter (default "," or tab for .tsv)')
  .option('--blank <clear|skip>', 'empty cells: skip leaves the attribute untouched, clear erases it', 'skip')
  .option('--rejects <path>', 'where rejected rows go (default FILE.rejects.csv)')
  .option('--checkpoint <path>', 'resume state (default FILE.checkpoint.json)')
  .option('--ignore-columns <list>', 'comma-separated columns not to upload, e.g. _line,_reason of a rejects file')
  .option('--resume', 'continue from the checkpoint of an interrupted upload')
  .option('--dry-run', 'validate the whole file and report what would be sent; sends nothing')
  .option('--concurrency <n>', 'requests in flight', '4')
  .option('--progress-every <seconds>', 'interval of progress lines when stderr is not a terminal', '5')
  .option('--json', 'print the summary as one JSON object')
  // Bad usage (no FILE, an unknown option, an option without its value) exits 2, as documented; commander says 1.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE))
  .action(async (file: string, opts: UploadCommandOptions) => {
    const interrupt = abortOnInterrupt(out)
    try {
      process.exitCode = await uploadFile(file, opts, {
        out,
        progress: process.stderr,
        env: process.env,
        signal: interrupt.signal,
      })
    } catch (error) {
      // Not expected (uploadFile reports what it knows): still one line, not a stack trace.
      out.err(`error: ${error instanceof Error ? error.message : String(error)}`)
      if (process.env.TRAITBASE_DEBUG === '1' && error instanceof Error && error.stack) out.err(error.stack)
      process.exitCode = 1
    } finally {
      interrupt.dispose()
    }
  })

await program.parseAsync(process.argv)
