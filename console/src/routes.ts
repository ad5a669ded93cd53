/** Hash routes (#/projects/ID/integration): one static index.html serves every page. */
export const projectHref = (projectId: string | number, page: string): string =>
  `#/projects/${encodeURIComponent(String(projectId))}/${page}`
