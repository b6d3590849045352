import type { Command } from 'commander';
import { ConflictError, NotFoundError } from '../../../functions/engine/errors.ts';
import { insertAudit } from '../../../functions/engine/sql/audit.ts';
import { cancelJob } from '../../../functions/engine/sql/cancelJob.ts';
import { getJob } from '../../../functions/engine/sql/getJob.ts';
import { mayApply } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { UsageError } from '../errors.ts';
import { parseIds } from '../parse.ts';
import { examples, table } from '../render.ts';

export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description(
      "safe cancel: queued or running jobs end failed with the reason, who and when kept (the row stays for audit); a running job's worker is fenced out. All or nothing.",
    )
    .argument('<id...>', 'job ids')
    .requiredOption('--reason <text>', 'why (required; kept in last_error and the audit)')
    .option('--yes', 'apply to more than one job')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText(
      'after',
      examples(
        'taskctl cancel 4812 --reason "customer asked to stop the export, TICKET-88"',
        'taskctl cancel 4812 4813 --reason "duplicate submission" --yes',
      ),
    )
    .action(
      async (rawIds: string[], o: { reason: string; yes?: boolean; dryRun?: boolean }, cmd: Command) => {
        const ids = parseIds(rawIds);
        const reason = o.reason.trim();
        if (reason.length === 0) throw new UsageError('--reason must not be empty');
        const db = database();
        const seen = await Promise.all(ids.map(async (id) => ({ id, row: await getJob(db, id) })));
        const missing = seen.filter((s) => !s.row).map((s) => s.id);
        if (missing.length > 0)
          throw new NotFoundError(`job(s) not found: ${missing.join(', ')}; nothing changed`);
        const terminal = seen.filter((s) => s.row!.status === 'completed' || s.row!.status === 'failed');
        if (terminal.length > 0) {
          throw new ConflictError(
            'terminal',
            `job(s) already finished: ${terminal.map((s) => `${s.id} (${s.row!.status})`).join(', ')}; nothing changed`,
          );
        }
        const plan = seen.map((s) => ({ id: s.id, status: s.row!.status, worker: s.row!.locked_by }));
        const apply = mayApply(cmd, {
          plan: { action: 'cancel', targets: plan },
          human: () =>
            table(
              ['id', 'status', 'worker'],
              plan.map((p) => [p.id, p.status, p.worker]),
            ),
          count: plan.length,
          bulk: plan.length > 1,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const actor = actorOf(cmd);
        // One transaction: a job that finished since the read rolls every cancel back.
        const cancelled = await db.transaction(async (tx) => {
          const out: Array<{ id: string; previousStatus: string; worker: string | null }> = [];
          for (const id of ids) {
            const row = await cancelJob(tx, id, reason, actor);
            if (!row) throw new ConflictError('terminal', `job ${id} finished meanwhile; nothing changed`);
            const previous = (row.last_error as { previousStatus?: string }).previousStatus ?? 'unknown';
            out.push({ id, previousStatus: previous, worker: row.locked_by });
          }
          await insertAudit(
            tx,
            out.map((c) => ({
              jobId: c.id,
              queue: null,
              action: 'cancel',
              actor,
              reason,
              details: { previousStatus: c.previousStatus, worker: c.worker },
            })),
          );
          return out;
        });
        emit(cmd, { action: 'cancel', cancelled }, () =>
          [
            `cancelled ${cancelled.length} job(s)`,
            table(
              ['id', 'was', 'worker'],
              cancelled.map((c) => [c.id, c.previousStatus, c.worker]),
            ),
          ].join('\n'),
        );
      },
    );
}
