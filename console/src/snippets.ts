/**
 * Ready-to-paste upload snippets (pure: the page renders them and test/console runs them for real).
 * With a known secret the key is written in; otherwise each reads the TRAITBASE_API_KEY variable.
 */

/** The spec's example request. */
export const SAMPLE_BODY = {
  field_name: ['user_id', 'watch_conan', 'watch_attack_on_titan'],
  values: [
    ['abcd123', 'yes', 'no'],
    ['abcd456', 'yes', 'yes'],
    ['abcd789', 'no', 'no'],
  ],
} as const

export type SnippetLanguage = 'curl' | 'python' | 'node' | 'go' | 'sdk' | 'cli'

export interface Snippet {
  readonly language: SnippetLanguage
  readonly title: string
  /** How to run it, shown above the code. */
  readonly howTo: string
  readonly code: string
}

export const KEY_VARIABLE = 'TRAITBASE_API_KEY'

/** POSIX shell single quotes: safe for any text. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`
}

/** A JSON string literal is also a valid JavaScript, Python 3 and Go literal for this text. */
const literal = (text: string): string => JSON.stringify(text)

export function buildSnippets(baseUrl: string, key: string | null): Snippet[] {
  const url = `${baseUrl.replace(/\/+$/, '')}/v1/user/profiles`
  const body = JSON.stringify(SAMPLE_BODY)
  const rows = SAMPLE_BODY.values.map((row) =>
    Object.fromEntries(SAMPLE_BODY.field_name.map((name, i) => [name, row[i]] as const)),
  )
  const envHint = key === null ? ` First: export ${KEY_VARIABLE}=<a key of this project>.` : ''

  const curlAuth =
    key === null ? `"Authorization: Bearer $${KEY_VARIABLE}"` : shellQuote(`Authorization: Bearer ${key}`)
  const curl = [
    `curl -sS --fail-with-body -X POST ${shellQuote(url)} \\`,
    `  -H ${curlAuth} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(body)}`,
  ].join('\n')

  const pyKey = key === null ? `os.environ[${literal(KEY_VARIABLE)}]` : literal(key)
  const python = [
    ...(key === null ? ['import os', ''] : []),
    'import requests',
    '',
    'response = requests.post(',
    `    ${literal(url)},`,
    `    headers={"Authorization": "Bearer " + ${pyKey}},`,
    '    json={',
    `        "field_name": ${JSON.stringify(SAMPLE_BODY.field_name)},`,
    `        "values": ${JSON.stringify(SAMPLE_BODY.values)},`,
    '    },',
    '    timeout=30,',
    ')',
    'print(response.status_code, response.text)',
    'response.raise_for_status()',
  ].join('\n')

  const jsKey = key === null ? `process.env.${KEY_VARIABLE}` : literal(key)
  const node = [
    `fetch(${literal(url)}, {`,
    `  method: 'POST',`,
    `  headers: { Authorization: 'Bearer ' + ${jsKey}, 'Content-Type': 'application/json' },`,
    `  body: JSON.stringify(${body}),`,
    '}).then(async (response) => {',
    '  console.log(response.status, await response.text())',
    '  if (!response.ok) process.exitCode = 1',
    '})',
  ].join('\n')

  const goKey = key === null ? `os.Getenv(${literal(KEY_VARIABLE)})` : literal(key)
  const go = [
    'package main',
    '',
    'import (',
    '\t"fmt"',
    '\t"io"',
    '\t"net/http"',
    '\t"os"',
    '\t"strings"',
    ')',
    '',
    'func main() {',
    `\tbody := strings.NewReader(${literal(body)})`,
    `\treq, err := http.NewRequest("POST", ${literal(url)}, body)`,
    '\tif err != nil {',
    '\t\tpanic(err)',
    '\t}',
    `\treq.Header.Set("Authorization", "Bearer "+${goKey})`,
    '\treq.Header.Set("Content-Type", "application/json")',
    '\tres, err := http.DefaultClient.Do(req)',
    '\tif err != nil {',
    '\t\tpanic(err)',
    '\t}',
    '\tdefer res.Body.Close()',
    '\tanswer, _ := io.ReadAll(res.Body)',
    '\tfmt.Println(res.StatusCode, string(answer))',
    '\tif res.StatusCode != http.StatusOK {',
    '\t\tos.Exit(1)',
    '\t}',
    '}',
  ].join('\n')

  const sdk = [
    "import { createClient } from 'traitbase/sdk'",
    '',
    `const client = createClient({ baseUrl: ${literal(baseUrl.replace(/\/+$/, ''))}, apiKey: ${jsKey} })`,
    `const summary = await client.uploadProfiles(${JSON.stringify(rows)})`,
    'console.log(summary)',
    'if (summary.rejected > 0 || summary.failed > 0) process.exitCode = 1',
  ].join('\n')

  const csv = [SAMPLE_BODY.field_name.join(','), ...SAMPLE_BODY.values.map((row) => row.join(','))].join('\n')
  const cli = [
    "cat > users.csv <<'CSV'",
    csv,
    'CSV',
    `npx traitbase upload users.csv --url ${shellQuote(baseUrl.replace(/\/+$/, ''))}${key === null ? '' : ` --key ${shellQuote(key)}`}`,
  ].join('\n')

  return [
    { language: 'curl', title: 'curl', howTo: `Paste into a shell.${envHint}`, code: curl },
    {
      language: 'python',
      title: 'Python',
      howTo: `Save as upload.py and run python3 upload.py (needs pip install requests).${envHint}`,
      code: python,
    },
    {
      language: 'node',
      title: 'Node.js',
      howTo: `Save as upload.mjs and run node upload.mjs (Node 18+).${envHint}`,
      code: node,
    },
    { language: 'go', title: 'Go', howTo: `Save as main.go and run go run main.go.${envHint}`, code: go },
    {
      language: 'sdk',
      title: 'SDK',
      howTo: `Save as upload.mjs in a project with traitbase installed and run node upload.mjs.${envHint}`,
      code: sdk,
    },
    {
      language: 'cli',
      title: 'CLI',
      howTo: `Paste into a shell where traitbase is installed (npx traitbase).${key === null ? ` It reads ${KEY_VARIABLE}.` : ''}`,
      code: cli,
    },
  ]
}
