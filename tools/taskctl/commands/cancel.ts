import type { Command } from 'commander';
import { cancelMany, planCancel } from '../../../functions/engine/index.ts';
import { type GateOptions, mayApply, withGate } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { UsageError } from '../errors.ts';
import { parseIds } from '../parse.ts';
import { examples, table } from '../render.ts';

export function registerCancel(program: Command): void {
  const command = program
    .command('cancel')
    .description(
      "safe cancel: queued or running jobs end failed with the reason, who and when kept (the row stays for audit); a running job's worker is fenced out. All or nothing.",
    )
    .argument('<id...>', 'job ids')
    .requiredOption('--reason <text>', 'why (required; kept in last_error and the audit)');
  withGate(command, 'apply to more than one job')
    .addHelpText(
      'after',
      examples(
        'taskctl cancel 4812 --reason "customer asked to stop the export, TICKET-88"',
        'taskctl cancel 4812 4813 --reason "duplicate submission" --yes',
      ),
    )
    .action(async (rawIds: string[], o: GateOptions & { reason: string }, cmd: Command) => {
      const ids = parseIds(rawIds);
      const reason = o.reason.trim();
      if (reason.length === 0) throw new UsageError('--reason must not be empty');
      const db = database();
      const plan = await planCancel(db, ids);
      const human = () =>
        table(
          ['id', 'status', 'worker'],
          plan.map((p) => [p.id, p.status, p.worker]),
        );
      const gate = {
        plan: { action: 'cancel', targets: plan },
        human,
        count: plan.length,
        bulk: plan.length > 1,
      };
      if (!mayApply(cmd, gate, o)) return;
      // One transaction, the audit rows with it: a job that finished since the read rolls every cancel back.
      const cancelled = await cancelMany(db, ids, { actor: actorOf(cmd), reason });
      emit(cmd, { action: 'cancel', cancelled }, () =>
        [
          `cancelled ${cancelled.length} job(s)`,
          table(
            ['id', 'was', 'worker'],
            cancelled.map((c) => [c.id, c.previousStatus, c.worker]),
          ),
        ].join('\n'),
      );
    });
}
