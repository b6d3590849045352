/** `npm run migrate`: applies pending migrations to DATABASE_URL (or DATABASE_DSN). */
import { loadConfig } from '../functions/platform/config.ts';
import { createDb } from '../functions/platform/db.ts';
import { applyMigrations } from '../functions/platform/migrations.ts';
import { codeSchedules, createRegistry } from '../functions/tasks/index.ts';

const config = loadConfig();
const url = config.databaseUrl ?? 'postgres://root@127.0.0.1:5432/test';
const db = createDb({ connectionString: url, applicationName: 'dte-migrate', queryTimeoutMs: 600_000 });
try {
  await applyMigrations(db, {
    config,
    log: (line) => console.log(line),
    onMigrated: (result) =>
      console.log(`${result.applied.length} applied, ${result.alreadyApplied} already applied`),
    schedules: codeSchedules(),
    registry: createRegistry(),
  });
} catch (err) {
  console.error(`migrate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await db.end();
}
