import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, readFileSync } from 'node:fs'
import net from 'node:net'

export interface ServerProcess {
  readonly baseUrl: string
  readonly pid: number
  /** Peak resident set (VmHWM) so far, bytes; null without /proc. */
  peakRssBytes(): number | null
  /** CPU time (user + system) used so far, seconds; null without /proc. */
  cpuSeconds(): number | null
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>
}

export interface StartServerOptions {
  /** Path of the server's entry, e.g. `dist/server/main.js`. */
  readonly entry: string
  /** Added to the inherited environment; PORT and HOST are set here. */
  readonly env: Readonly<Record<string, string>>
  /** Arguments after the entry, e.g. `['--workers', '2']`. Default none. */
  readonly args?: readonly string[]
  /** Where the server's stdout and stderr go. */
  readonly logFile: string
  /** Default 60 s: migrations on a big database may take a while. */
  readonly readyTimeoutMs?: number
}

/** Starts the real server on a free loopback port and waits until `GET /healthz` answers 200. */
export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const port = await findFreePort()
  const log = openSync(options.logFile, 'a')
  // BENCH_SERVER_NODE_ARGS: Node flags for the server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, which
  // NODE_OPTIONS does not allow).
  const nodeArgs = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '')
  const child = spawn(process.execPath, [...nodeArgs, options.entry, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', log, log],
  })
  closeSync(log)
  const baseUrl = `http://127.0.0.1:${port}`
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    await waitForHealth(baseUrl, child, options.readyTimeoutMs ?? 60_000)
  } catch (error) {
    child.kill('SIGKILL')
    const tail = readFileSync(options.logFile, 'utf8').split('\n').slice(-15).join('\n')
    throw new Error(`${error instanceof Error ? error.message : String(error)}; server log ends:\n${tail}`)
  }
  const pid = child.pid as number
  return {
    baseUrl,
    pid,
    // With `--workers N` the work happens in the primary's children: count them too.
    peakRssBytes: () => sumOver([pid, ...readChildren(pid)], readPeakRssBytes),
    cpuSeconds: () => sumOver([pid, ...readChildren(pid)], readCpuSeconds),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Child pids from /proc (the workers of a `--workers N` server); empty when unreadable. */
export function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function sumOver(pids: readonly number[], read: (pid: number) => number | null): number | null {
  let total: number | null = null
  for (const pid of pids) {
    const v = read(pid)
    if (v !== null) total = (total ?? 0) + v
  }
  return total
}

/** VmHWM from /proc/PID/status, in bytes; null when unreadable (not Linux, process gone). */
export function readPeakRssBytes(pid: number): number | null {
  try {
    return parsePeakRss(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return null
  }
}

export function parsePeakRss(status: string): number | null {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status)
  return m ? Number(m[1]) * 1024 : null
}

/** utime + stime from /proc/PID/stat, in seconds; null when unreadable. */
export function readCpuSeconds(pid: number): number | null {
  try {
    return parseCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return null
  }
}

/** Linux reports these in clock ticks of 1/100 s (USER_HZ, fixed at 100 on every mainstream architecture). */
const USER_HZ = 100

export function parseCpuSeconds(stat: string): number | null {
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : null
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

async function waitForHealth(baseUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before it was ready`)
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`)
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`server not healthy within ${timeoutMs} ms`)
}
