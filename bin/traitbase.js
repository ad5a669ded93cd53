#!/usr/bin/env node
/* global process */
// `traitbase serve` runs the server itself; every other command is the CLI, which talks to a server
// over HTTP and never loads server code.
if (process.argv[2] === 'serve') {
  process.argv.splice(2, 1)
  await import('../dist/server/main.js')
} else {
  await import('../dist/cli/main.js')
}
