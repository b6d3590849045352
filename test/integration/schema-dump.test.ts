import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate, SCHEMA_DUMP_FILE } from '../../functions/engine/migrator.ts';
import { createDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { dumpFreshSchema, dumpSchema } from '../../tools/schema-dump.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable } from '../helpers/pg.ts';

describe.runIf(await postgresAvailable())('checked-in schema dump', () => {
  it('a freshly migrated schema dumps exactly as migrations/dump/schema.sql (else: npm run schema:dump)', async () => {
    // Prepare
    const checkedIn = readFileSync(join(migrationsDir(), SCHEMA_DUMP_FILE), 'utf8');
    // Act
    const fresh = await dumpFreshSchema(DATABASE_URL);
    // Assess: a line diff on failure; regenerate with `npm run schema:dump` and review it.
    expect(fresh.split('\n'), 'migrations/dump/schema.sql is stale: run `npm run schema:dump`').toEqual(
      checkedIn.split('\n'),
    );
  });

  it('the dump names every function attribute and grant, and differs when one changes', async () => {
    // Prepare
    const t = await createTestSchema('dump');
    try {
      const before = await dumpSchema(t.db);
      // Act: what a careless hand edit would do, once to the attributes, once to the grants.
      await t.db.query(
        'ALTER FUNCTION jobs_claim_batch(text, integer, integer, text[], boolean, bigint[], bigint[], jsonb[]) RESET search_path',
      );
      await t.db.query(
        'GRANT EXECUTE ON FUNCTION jobs_cancel(bigint, text, text, boolean, text) TO dte_reaper',
      );
      const after = await dumpSchema(t.db);
      // Assess
      expect(before).not.toContain(t.schema);
      expect(before).toMatch(
        /jobs_claim_batch\([^)]*\)\n RETURNS record\n LANGUAGE plpgsql\n SECURITY DEFINER\n SET plan_cache_mode TO 'force_generic_plan'\n SET enable_seqscan TO 'off'\n SET jit TO 'off'\n SET search_path TO '<schema>', 'pg_temp'/,
      );
      expect(before).toContain(
        'GRANT EXECUTE ON FUNCTION jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text) TO dte_api;',
      );
      const fixedPaths = (dump: string) => dump.split("SET search_path TO '<schema>', 'pg_temp'").length - 1;
      expect(fixedPaths(after)).toBe(fixedPaths(before) - 1);
      expect(after).toMatch(
        /jobs_claim_batch\([^)]*\)\n RETURNS record\n LANGUAGE plpgsql\n SECURITY DEFINER\n SET plan_cache_mode TO 'force_generic_plan'\n SET enable_seqscan TO 'off'\n SET jit TO 'off'\nAS /,
      );
      const added = after.split('\n').filter((l) => !before.split('\n').includes(l));
      expect(added).toEqual([
        'GRANT EXECUTE ON FUNCTION jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text) TO dte_reaper;',
      ]);
    } finally {
      await t.drop();
    }
  });

  it('the embedded PGlite of npm start migrates to the same schema, function files included', async () => {
    // Prepare: PGlite in memory behind its socket server, reached through the same pg pool as tools/local-engine.ts.
    const { PGlite } = await import('@electric-sql/pglite');
    const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
    const pglite = await PGlite.create();
    const server = new PGLiteSocketServer({ db: pglite, port: 0, host: '127.0.0.1' });
    await server.start();
    const port = (server as unknown as { server?: { address(): { port: number } } }).server?.address().port;
    const db = createDb({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, max: 1 });
    try {
      // Act
      const result = await migrate(db, loadMigrations(migrationsDir()));
      const dump = await dumpSchema(db);
      // Assess: only the public schema's own default grant (PostgreSQL's, not a migration's) differs.
      expect(result.functions.length).toBeGreaterThan(0);
      const checkedIn = readFileSync(join(migrationsDir(), SCHEMA_DUMP_FILE), 'utf8');
      expect(dump.split('\n').filter((l) => l !== 'GRANT USAGE ON SCHEMA <schema> TO PUBLIC;')).toEqual(
        checkedIn.split('\n'),
      );
    } finally {
      await db.end();
      await server.stop();
      await pglite.close();
    }
  }, 120_000);
});
