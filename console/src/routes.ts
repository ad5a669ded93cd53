/** Hash routes (#/projects/ID/integration): one static index.html serves every page. */
export const projectHref = (projectId: string, page: string): string =>
  `#/projects/${encodeURIComponent(projectId)}/${page}`
