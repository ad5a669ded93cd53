import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Bouncer {
  /** `url` with host and port replaced by PgBouncer's. */
  readonly url: string
  stop(): Promise<void>
}

/** Debian's path, or the one on PATH. */
function findPgbouncer(): string | undefined {
  for (const candidate of ['/usr/sbin/pgbouncer', 'pgbouncer']) {
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore' }).status === 0) return candidate
  }
  return undefined
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts a PgBouncer of its own in transaction pooling mode on a free port, in front of the server
 * of `databaseUrl` (trust auth, as the test server). `serverConnections` server connections are
 * shared by every client, so any session state a client relies on (a session advisory lock, SET,
 * LISTEN, a named prepared statement) leaks to or vanishes for the others. Undefined when
 * PgBouncer is not installed.
 */
export async function startPgbouncer(databaseUrl: string, serverConnections = 2): Promise<Bouncer | undefined> {
  const binary = findPgbouncer()
  if (binary === undefined) return undefined
  const target = new URL(databaseUrl)
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'traitbase-pgbouncer-'))
  // PgBouncer refuses to run as root; when we are root it drops to `nobody`, who must read these files.
  chmodSync(dir, 0o755)
  const user = decodeURIComponent(target.username || 'postgres')
  writeFileSync(join(dir, 'users.txt'), `"${user}" ""\n`, { mode: 0o644 })
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${serverConnections}`,
      'max_client_conn = 500',
      '',
    ].join('\n'),
    { mode: 0o644 },
  )
  const asRoot = process.getuid?.() === 0
  const child: ChildProcess = spawn(binary, [...(asRoot ? ['-u', 'nobody'] : []), join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  child.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`PgBouncer did not start:\n${log}`)), 10_000)
    const check = setInterval(() => {
      if (log.includes('process up')) {
        clearInterval(check)
        clearTimeout(timer)
        resolve()
      }
    }, 50)
    child.once('exit', (code) => {
      clearInterval(check)
      clearTimeout(timer)
      reject(new Error(`PgBouncer exited (${code}):\n${log}`))
    })
  })
  const url = new URL(databaseUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.toString(),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGINT')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
