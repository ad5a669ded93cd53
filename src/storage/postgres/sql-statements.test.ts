import assert from 'node:assert/strict'
import { test } from 'node:test'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js'
import { splitStatements } from './sql-statements.js'

test('splits on semicolons outside strings, identifiers, dollar bodies and comments', () => {
  const sql = `
-- a comment; with a semicolon
CREATE TABLE "we;ird" (a text DEFAULT 'x;y', b text DEFAULT 'it''s;', c text DEFAULT E'\\';');
/* block; /* nested; */ still; */
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN PERFORM 1; RETURN $$;$$::text::int; END $fn$;
ALTER TABLE t ADD COLUMN x int;ALTER TABLE t ADD CONSTRAINT t_x CHECK (x >= 0)
;  -- trailing
`
  const parts = splitStatements(sql)
  assert.equal(parts.length, 4)
  assert.match(parts[0] as string, /^-- a comment; with a semicolon\nCREATE TABLE "we;ird" .*E'\\';'\)$/s)
  assert.match(parts[1] as string, /nested; \*\/ still; \*\/\nCREATE FUNCTION f\(\).* END \$fn\$$/s)
  assert.equal(parts[2], 'ALTER TABLE t ADD COLUMN x int')
  assert.equal(parts[3], 'ALTER TABLE t ADD CONSTRAINT t_x CHECK (x >= 0)')
})

test('every migration splits into statements that start with a keyword', () => {
  for (const m of POSTGRES_MIGRATIONS) {
    const parts = splitStatements(m.sql)
    assert.ok(parts.length >= 1, m.id)
    for (const p of parts) {
      const code = p.replace(/^(--[^\n]*\n|\s)+/, '')
      assert.match(code, /^(CREATE|ALTER|DROP|INSERT|UPDATE|COMMENT|SELECT|DO)\b/, `${m.id}: ${code.slice(0, 60)}`)
    }
  }
})
