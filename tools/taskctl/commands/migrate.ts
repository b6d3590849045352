import type { Command } from 'commander';
import {
  destructiveStatements,
  loadMigrations,
  migrate,
  migrationStatus,
  syncCodeSchedules,
} from '../../../functions/engine/index.ts';
import { migrationsDir } from '../../../functions/platform/paths.ts';
import { codeSchedules, createRegistry } from '../../../functions/tasks/index.ts';
import { database, emit } from '../context.ts';
import { examples, table } from '../render.ts';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description(
      'apply pending migrations (idempotent; refuses a changed applied file or an unmarked destructive one)',
    )
    .option('--dry-run', 'list what would be applied, apply nothing')
    .addHelpText('after', examples('taskctl migrate --dry-run', 'taskctl migrate'))
    .action(async (o: { dryRun?: boolean }, cmd: Command) => {
      const files = loadMigrations(migrationsDir());
      const db = database();
      if (o.dryRun) {
        const status = await migrationStatus(db, files);
        const rows = status.map((s) => ({
          file: s.file.file,
          applied: s.applied,
          checksumMatches: s.checksumMatches,
          destructive: destructiveStatements(s.file.sql),
        }));
        const pending = rows.filter((r) => !r.applied).map((r) => r.file);
        emit(cmd, { dryRun: true, pending, migrations: rows }, () =>
          [
            table(
              ['file', 'state', 'destructive'],
              rows.map((r) => [
                r.file,
                r.applied ? (r.checksumMatches ? 'applied' : 'APPLIED, FILE CHANGED') : 'pending',
                r.destructive.join(', ') || '',
              ]),
            ),
            `${pending.length} pending (dry run: nothing applied)`,
          ].join('\n'),
        );
        return;
      }
      const result = await migrate(db, files);
      // The code-defined schedules (defineSchedule) become the table's `code` rows.
      await syncCodeSchedules(db, codeSchedules(), createRegistry());
      emit(
        cmd,
        result,
        () =>
          `${result.applied.length} applied${result.applied.length ? `: ${result.applied.join(', ')}` : ''}, ${result.alreadyApplied} already applied`,
      );
    });
}
