import type { Command } from 'commander';
import { insertAudit } from '../../../functions/engine/sql/audit.ts';
import { countJobsByQueue } from '../../../functions/engine/sql/jobStats.ts';
import { listQueueControls, pauseQueue, resumeQueue } from '../../../functions/engine/sql/queues.ts';
import { mayApply } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { parseQueueName } from '../parse.ts';
import { examples } from '../render.ts';

const NOTE_PAUSE =
  'consumers stop claiming from these queues at their next claim; running jobs finish. A queue first used after this pause is not paused: to stop everything, disable the consumer schedule (docs/RUNBOOK.md, "Drain and resume").';

export function registerQueues(program: Command): void {
  program
    .command('pause')
    .description(
      'stop consumers claiming from queues (drain): running jobs finish, queued ones wait. No queue named: every queue known now (needs --yes)',
    )
    .argument('[queue...]', 'queue names')
    .option('--reason <text>', 'why (shown by status, kept in the audit)')
    .option('--yes', 'needed when no queue is named')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText(
      'after',
      examples(
        'taskctl pause reports --reason "INC-231: downstream API rate-limiting us"',
        'taskctl pause --yes',
      ),
    )
    .action(
      async (names: string[], o: { reason?: string; yes?: boolean; dryRun?: boolean }, cmd: Command) => {
        const given = names.map(parseQueueName);
        const db = database();
        const queues =
          given.length > 0
            ? [...new Set(given)]
            : [
                ...new Set([
                  ...(await countJobsByQueue(db)).map((q) => q.queue),
                  ...(await listQueueControls(db)).map((q) => q.name),
                ]),
              ].sort();
        const apply = mayApply(cmd, {
          plan: { action: 'pause', queues },
          human: () => `would pause: ${queues.join(', ') || '(no queues known)'}`,
          count: queues.length,
          bulk: given.length === 0,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const actor = actorOf(cmd);
        await db.transaction(async (tx) => {
          for (const q of queues) await pauseQueue(tx, q, actor, o.reason ?? null);
          await insertAudit(
            tx,
            queues.map((q) => ({ jobId: null, queue: q, action: 'pause', actor, reason: o.reason ?? null })),
          );
        });
        emit(
          cmd,
          { action: 'pause', paused: queues, actor, note: NOTE_PAUSE },
          () => `paused: ${queues.join(', ') || '(none)'}\n${NOTE_PAUSE}`,
        );
      },
    );

  program
    .command('resume')
    .description(
      'let consumers claim from paused queues again. No queue named: every paused queue (needs --yes)',
    )
    .argument('[queue...]', 'queue names')
    .option('--reason <text>', 'why (kept in the audit)')
    .option('--yes', 'needed when no queue is named')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText('after', examples('taskctl resume reports', 'taskctl resume --yes'))
    .action(
      async (names: string[], o: { reason?: string; yes?: boolean; dryRun?: boolean }, cmd: Command) => {
        const given = names.map(parseQueueName);
        const db = database();
        const queues =
          given.length > 0
            ? [...new Set(given)]
            : (await listQueueControls(db)).filter((q) => q.paused).map((q) => q.name);
        const apply = mayApply(cmd, {
          plan: { action: 'resume', queues },
          human: () => `would resume: ${queues.join(', ') || '(no paused queues)'}`,
          count: queues.length,
          // Resuming everything at once undoes every pause an incident put in place: as deliberate as pausing all.
          bulk: given.length === 0,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const actor = actorOf(cmd);
        await db.transaction(async (tx) => {
          for (const q of queues) await resumeQueue(tx, q, actor);
          await insertAudit(
            tx,
            queues.map((q) => ({ jobId: null, queue: q, action: 'resume', actor, reason: o.reason ?? null })),
          );
        });
        emit(
          cmd,
          { action: 'resume', resumed: queues, actor },
          () => `resumed: ${queues.join(', ') || '(none)'}`,
        );
      },
    );
}
