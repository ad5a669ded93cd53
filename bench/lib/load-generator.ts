import { runLoad, type LoadConfig } from './load-run.js'

// The load generator runs in its own process (child_process.fork) so that building and sending
// requests never competes with the server's event loop. Protocol: one LoadConfig message in, one
// LoadResult message out, then exit.
if (process.send === undefined) {
  process.stderr.write('load-generator: start me with child_process.fork\n')
  process.exit(2)
}
process.once('message', (config: LoadConfig) => {
  runLoad(config).then(
    (result) => process.send?.(result, () => process.exit(0)),
    (error: unknown) => {
      process.stderr.write(`load-generator: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exit(1)
    },
  )
})
