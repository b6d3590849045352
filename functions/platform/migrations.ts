import {
  checkRoleMigration,
  type Db,
  loadMigrations,
  type MigrateResult,
  migrate,
  syncCodeSchedules,
} from '../engine/index.ts';
import type { ScheduleSpec, TaskRegistry } from '../tasks/index.ts';
import type { Config } from './config.ts';
import { migrationsDir } from './paths.ts';

export interface ApplyMigrationsOptions {
  /** The migration files' directory (default: MIGRATIONS_DIR of `config`, else found beside the code). */
  dir?: string | undefined;
  config?: Pick<Config, 'MIGRATIONS_DIR'>;
  /** Refuse, before anything is applied, a pending 0004 the connected user could not run. */
  preflight?: boolean;
  log?: (line: string) => void;
  /** Told the migrations' result before the schedules are synced. */
  onMigrated?: (result: MigrateResult) => void;
  /** The code-defined schedules (defineSchedule), synced into the table's `code` rows. */
  schedules: readonly ScheduleSpec[];
  registry: TaskRegistry;
}

/** Applies the pending migrations, then syncs the code schedules: migrate's whole job, wherever it runs. */
export async function applyMigrations(
  db: Db,
  options: ApplyMigrationsOptions,
): Promise<{ result: MigrateResult; synced: { upserted: number; removed: number } }> {
  const files = loadMigrations(options.dir ?? migrationsDir(options.config));
  if (options.preflight) await checkRoleMigration(db, files);
  const result = await migrate(db, files, options.log);
  options.onMigrated?.(result);
  const synced = await syncCodeSchedules(db, options.schedules, options.registry);
  return { result, synced };
}
