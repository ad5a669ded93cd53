/**
 * The change log's retention, shared by both stores: every `intervalMs`, prune what is older than
 * `retentionMs`, one run at a time, never after close. Failures are left for the next run.
 */
export function startPruneTimer(
  prune: (olderThan: Date) => Promise<unknown>,
  isClosed: () => boolean,
  retentionMs: number,
  intervalMs: number,
): NodeJS.Timeout {
  let running = false
  const timer = setInterval(() => {
    if (running || isClosed()) return
    running = true
    prune(new Date(Date.now() - retentionMs))
      .catch(() => undefined)
      .finally(() => (running = false))
  }, intervalMs)
  timer.unref()
  return timer
}
