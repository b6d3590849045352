/** Migrate Lambda, run by the CDK trigger at deploy: applies pending migrations. Wiring only. */

import type { MigrateResult } from './engine/index.ts';
import { applyMigrations } from './platform/migrations.ts';
import { createRuntime, type LambdaHandler, lambdaHandler, type RuntimeOptions } from './platform/runtime.ts';
import { codeSchedules, createRegistry } from './tasks/index.ts';

export { checkRoleMigration, type RoleRights, readRoleRights, roleGrantProblem } from './engine/index.ts';

export interface MigrateHandlerOptions extends Omit<RuntimeOptions, 'metrics'> {
  dir?: string;
}

export function createHandler(options: MigrateHandlerOptions = {}): LambdaHandler<unknown, MigrateResult> {
  const runtime = createRuntime('migrate', options);
  const { config, logger, db } = runtime;
  return lambdaHandler(runtime, async () => {
    // A failure throws: the deploy-time trigger fails and the deployment rolls back.
    const { result, synced } = await applyMigrations(db, {
      dir: options.dir,
      config,
      preflight: true,
      log: (line) => logger.info(line),
      onMigrated: (migrated) => logger.info('migrations done', { ...migrated }),
      // The code-defined schedules (defineSchedule) become the table's `code` rows.
      schedules: codeSchedules(),
      registry: createRegistry(),
    });
    logger.info('code schedules synced', synced);
    return result;
  });
}

export const handler = createHandler();
