import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MigrationError } from '../../functions/engine/errors.ts';
import {
  checksum,
  DESTRUCTIVE_MARKER,
  destructiveStatements,
  functionFileProblem,
  hasDestructiveMarker,
  loadFunctionFiles,
  loadMigrations,
  SCHEMA_TOKEN,
} from '../../functions/engine/migrator.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';

describe('destructiveStatements', () => {
  const flagged: Array<[string, string, string]> = [
    ['DROP TABLE', 'DROP TABLE jobs;', 'DROP'],
    ['DROP INDEX', 'DROP INDEX CONCURRENTLY jobs_claim_idx;', 'DROP'],
    ['a column drop', 'ALTER TABLE jobs DROP COLUMN result;', 'DROP'],
    ['TRUNCATE', 'truncate jobs;', 'TRUNCATE'],
    ['ALTER COLUMN ... TYPE', 'ALTER TABLE jobs ALTER COLUMN priority TYPE bigint;', 'column type change'],
    [
      'ALTER COLUMN ... SET DATA TYPE over several lines',
      'ALTER TABLE jobs\n  ALTER COLUMN priority\n  SET DATA TYPE bigint;',
      'column type change',
    ],
    ['RENAME', 'ALTER TABLE jobs RENAME COLUMN result TO output;', 'RENAME'],
  ];
  for (const [what, sql, name] of flagged) {
    it(`flags ${what}`, () => {
      expect(destructiveStatements(sql)).toContain(name);
    });
  }

  it('passes additive statements', () => {
    const sql = `CREATE TABLE t (id int PRIMARY KEY, note text);
      ALTER TABLE t ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
      CREATE INDEX t_created_idx ON t (created_at);
      ALTER TABLE t ALTER COLUMN note SET DEFAULT 'x';
      INSERT INTO t VALUES (1, 'a');`;
    expect(destructiveStatements(sql)).toEqual([]);
  });

  it('passes the shipped migrations: each is additive or carries the reviewed marker', () => {
    const marked: string[] = [];
    for (const f of loadMigrations(migrationsDir())) {
      if (hasDestructiveMarker(f.sql)) marked.push(f.file);
      else expect(destructiveStatements(f.sql), f.file).toEqual([]);
    }
    // 0022 replaces the unpartitioned jobs table (RENAME, DROP of what it replaces)
    expect(marked).toEqual(['0022_partitioned_jobs.sql']);
  });

  it('ignores the words inside line and block comments', () => {
    expect(destructiveStatements('-- we never DROP or TRUNCATE here\nCREATE TABLE t (id int);')).toEqual([]);
    expect(destructiveStatements('/* DROP TABLE jobs;\n TRUNCATE jobs; */ CREATE TABLE t (id int);')).toEqual(
      [],
    );
  });

  it('ignores the words inside string literals, including doubled quotes', () => {
    expect(destructiveStatements("COMMENT ON TABLE jobs IS 'do not DROP; it''s TRUNCATE-proof';")).toEqual(
      [],
    );
  });

  it('ignores the words inside dollar-quoted bodies, tagged or not', () => {
    expect(
      destructiveStatements(
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'DROP'; RETURN NULL; END $$;",
      ),
    ).toEqual([]);
    expect(
      destructiveStatements(
        'CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1 /* TRUNCATE */ $body$;',
      ),
    ).toEqual([]);
  });

  it('still flags a statement that follows a comment, string or body', () => {
    expect(destructiveStatements("-- cleanup\nCOMMENT ON TABLE t IS 'x';\nDROP TABLE t;")).toEqual(['DROP']);
    expect(
      destructiveStatements('CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\nTRUNCATE t;'),
    ).toEqual(['TRUNCATE']);
  });

  // Gaps these tests found in a first version of the check (strings stripped before comments,
  // the optional COLUMN keyword, DO blocks), fixed by scanning once from left to right.
  it('flags a DROP that follows a comment containing an apostrophe', () => {
    // The apostrophe in "don't" must not open a "string" that swallows the DROP.
    expect(destructiveStatements("-- don't panic\nDROP TABLE jobs;\n-- it's reviewed elsewhere\n")).toEqual([
      'DROP',
    ]);
  });

  it('flags a DROP that follows a block comment containing an apostrophe', () => {
    expect(destructiveStatements("/* don't */ DROP TABLE jobs; /* it's */")).toEqual(['DROP']);
  });

  it('flags a type change written without the optional COLUMN keyword', () => {
    expect(destructiveStatements('ALTER TABLE jobs ALTER priority TYPE bigint;')).toContain(
      'column type change',
    );
  });

  it('flags a DROP executed by a DO block (its body runs at migration time)', () => {
    expect(destructiveStatements("DO $$ BEGIN EXECUTE 'DROP TABLE jobs'; END $$;")).toContain('DROP');
  });
});

describe('hasDestructiveMarker', () => {
  it('accepts the marker on a line of its own, in any case and indentation', () => {
    expect(hasDestructiveMarker(`${DESTRUCTIVE_MARKER}\nDROP TABLE t;`)).toBe(true);
    expect(hasDestructiveMarker('  -- DESTRUCTIVE: Reviewed  \nDROP TABLE t;')).toBe(true);
  });

  it('refuses a marker that is trailing a statement, misspelt or missing', () => {
    expect(hasDestructiveMarker('DROP TABLE t; -- destructive: reviewed')).toBe(false);
    expect(hasDestructiveMarker('--destructive: reviewed\nDROP TABLE t;')).toBe(false);
    expect(hasDestructiveMarker('-- destructive: reviewed by bob\nDROP TABLE t;')).toBe(false);
    expect(hasDestructiveMarker('DROP TABLE t;')).toBe(false);
  });
});

describe('checksum and loadMigrations', () => {
  const dirs: string[] = [];
  const dirWith = (files: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'dte-migrator-'));
    dirs.push(dir);
    for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
    return dir;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('checksums the exact bytes: any change, even whitespace, changes it', () => {
    expect(checksum('SELECT 1;')).toBe(createHash('sha256').update('SELECT 1;').digest('hex'));
    expect(checksum('SELECT 1;')).not.toBe(checksum('SELECT 1; '));
  });

  it('reads NNNN_name.sql files in version order, ignoring other files', () => {
    const dir = dirWith({
      '0010_later.sql': 'SELECT 10;',
      '0002_second.sql': 'SELECT 2;',
      '0001_first.sql': 'SELECT 1;',
      'README.md': '# notes',
      '0003_draft.sql.bak': 'DROP TABLE t;',
    });
    const files = loadMigrations(dir);
    expect(files.map((f) => [f.version, f.name, f.file])).toEqual([
      [1, 'first', '0001_first.sql'],
      [2, 'second', '0002_second.sql'],
      [10, 'later', '0010_later.sql'],
    ]);
    expect(files[0]!.checksum).toBe(checksum('SELECT 1;'));
  });

  for (const bad of [
    '1_short.sql',
    '0001-dash.sql',
    '0001_Upper.sql',
    '0001_.sql',
    '00001_five.sql',
    'init.sql',
  ]) {
    it(`refuses the file name ${bad}, naming it`, () => {
      const dir = dirWith({ [bad]: 'SELECT 1;' });
      expect(() => loadMigrations(dir)).toThrow(MigrationError);
      expect(() => loadMigrations(dir)).toThrow(bad);
    });
  }

  it('refuses two files with one version', () => {
    expect(() => loadMigrations(dirWith({ '0001_a.sql': 'SELECT 1;', '0001_b.sql': 'SELECT 2;' }))).toThrow(
      /share version 1/,
    );
  });

  it('refuses an unmarked destructive file naming it and what it does; accepts it with the marker', () => {
    const unmarked = dirWith({ '0001_drop.sql': 'TRUNCATE t;\nALTER TABLE t DROP COLUMN c;' });
    expect(() => loadMigrations(unmarked)).toThrow(/0001_drop\.sql contains DROP, TRUNCATE/);
    const marked = dirWith({ '0001_drop.sql': `${DESTRUCTIVE_MARKER}\nTRUNCATE t;` });
    expect(loadMigrations(marked).map((f) => f.file)).toEqual(['0001_drop.sql']);
  });
});

describe('function files (migrations/functions)', () => {
  const dirs: string[] = [];
  const migrationsWith = (functions: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'dte-functions-'));
    dirs.push(dir);
    writeFileSync(join(dir, '0001_first.sql'), 'SELECT 1;');
    mkdirSync(join(dir, 'functions'));
    for (const [name, sql] of Object.entries(functions)) writeFileSync(join(dir, 'functions', name), sql);
    return dir;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const definer = (name: string, path = `${SCHEMA_TOKEN}, pg_temp`) =>
    `CREATE OR REPLACE FUNCTION ${name}() RETURNS int LANGUAGE plpgsql SECURITY DEFINER\n SET search_path TO ${path}\nAS $$ BEGIN RETURN 1; END $$;\n`;

  it('come along with the versioned files, in name order, checksummed', () => {
    const dir = migrationsWith({ 'b.sql': definer('b'), 'a.sql': definer('a'), 'notes.md': '# notes' });
    const files = loadMigrations(dir);
    expect(files.map((f) => f.file)).toEqual(['0001_first.sql']);
    expect(files.functions.map((f) => [f.file, f.checksum])).toEqual([
      ['functions/a.sql', checksum(definer('a'))],
      ['functions/b.sql', checksum(definer('b'))],
    ]);
    // A copy made with map carries the versioned files only.
    expect('functions' in files.map((f) => f)).toBe(false);
  });

  it('are none when the folder is absent', () => {
    expect(loadFunctionFiles(join(tmpdir(), 'dte-no-such-folder'))).toEqual([]);
  });

  it('refuse a bad name, a drop, a plain CREATE FUNCTION and a SECURITY DEFINER without the fixed path', () => {
    expect(() => loadMigrations(migrationsWith({ 'Claim.sql': definer('c') }))).toThrow(
      /functions\/Claim\.sql does not match/,
    );
    const cases: Array<[string, RegExp]> = [
      [`DROP FUNCTION f();\n${definer('f')}`, /contains DROP/],
      [definer('f').replace('CREATE OR REPLACE', 'CREATE'), /without OR REPLACE/],
      [definer('f', 'public, pg_temp'), /without SET search_path TO :"schema", pg_temp/],
      [definer('f', `pg_temp, ${SCHEMA_TOKEN}`), /without SET search_path/],
      [`${definer('f')}${definer('g').replace(/\n SET search_path[^\n]*/, '')}`, /without SET search_path/],
    ];
    for (const [sql, problem] of cases) {
      expect(functionFileProblem(sql), sql).toMatch(problem);
      expect(() => loadMigrations(migrationsWith({ 'f.sql': sql })), sql).toThrow(MigrationError);
    }
    expect(functionFileProblem(definer('f'))).toBeUndefined();
    // The words in comments and bodies do not count.
    expect(functionFileProblem(`-- never DROP here; SECURITY DEFINER\n${definer('f')}`)).toBeUndefined();
  });

  it('the shipped function files pass, each SECURITY DEFINER with the fixed path', () => {
    const shipped = loadFunctionFiles(join(migrationsDir(), 'functions'));
    expect(shipped.length).toBeGreaterThan(0);
    for (const f of shipped) {
      const text = readFileSync(join(migrationsDir(), f.file), 'utf8');
      const creates = text.match(/CREATE OR REPLACE FUNCTION/g)?.length ?? 0;
      expect(text.match(/SET search_path TO :"schema", pg_temp/g)?.length, f.file).toBe(creates);
    }
  });
});
