import { type Command, Option } from 'commander';
import { ConflictError, NotFoundError } from '../../../functions/engine/errors.ts';
import { getJob } from '../../../functions/engine/sql/getJob.ts';
import { findStuckJobs } from '../../../functions/engine/sql/releaseStuck.ts';
import { type Requeued, type RequeueTarget, requeueJobs } from '../../../functions/engine/sql/requeueJobs.ts';
import { findFailedJobs } from '../../../functions/engine/sql/retryFailed.ts';
import { mayApply } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { PartialFailureError } from '../errors.ts';
import { parseDuration, parseIds, parseIntInRange, parseQueueName } from '../parse.ts';
import { age, examples, table } from '../render.ts';

interface Skipped {
  id: string;
  reason: string;
}

/** Prints what changed and what did not; a target someone else changed in between is exit 3. */
function report(cmd: Command, action: string, changed: Requeued[], targets: RequeueTarget[]): void {
  const done = new Set(changed.map((c) => c.id));
  const skipped: Skipped[] = targets
    .filter((t) => !done.has(t.id))
    .map((t) => ({
      id: t.id,
      reason: `changed since read (was ${t.status}, lease token ${t.leaseToken}): completed, reclaimed or locked by a worker; nothing done`,
    }));
  emit(cmd, { action, requeued: changed, skipped }, () =>
    [
      `${action}: ${changed.length} job(s) back to queued`,
      table(
        ['id', 'was', 'worker'],
        changed.map((c) => [c.id, c.previousStatus, c.previousWorker]),
      ),
      ...(skipped.length > 0
        ? [
            'skipped:',
            table(
              ['id', 'why'],
              skipped.map((s) => [s.id, s.reason]),
            ),
          ]
        : []),
    ].join('\n'),
  );
  if (skipped.length > 0)
    throw new PartialFailureError(`${skipped.length} job(s) changed meanwhile and were skipped`);
}

export function registerRequeue(program: Command): void {
  program
    .command('requeue')
    .description(
      'force-release running jobs (or re-run failed ones) back to queued, fenced on the lease token read, so a worker that completes meanwhile wins and nothing runs twice',
    )
    .argument('<id...>', 'job ids')
    .option('--reason <text>', 'why (kept in last_error and the audit)', 'manual requeue')
    .option('--yes', 'apply to more than one job')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText(
      'after',
      examples(
        'taskctl requeue 4812 --reason "worker w-17 hung on a TLS handshake"',
        'taskctl requeue 4812 4813 4814 --reason "host lost" --yes',
      ),
    )
    .action(
      async (rawIds: string[], o: { reason: string; yes?: boolean; dryRun?: boolean }, cmd: Command) => {
        const ids = parseIds(rawIds);
        const db = database();
        const problems: Skipped[] = [];
        const targets: RequeueTarget[] = [];
        for (const id of ids) {
          const row = await getJob(db, id);
          if (!row) problems.push({ id, reason: 'not found' });
          else if (row.status === 'running' || row.status === 'failed')
            targets.push({ id, status: row.status, leaseToken: String(row.lease_token) });
          else
            problems.push({
              id,
              reason:
                row.status === 'queued'
                  ? 'already queued'
                  : 'completed: requeueing would run it twice (enqueue a new job instead)',
            });
        }
        if (problems.length > 0) {
          emit(cmd, { action: 'requeue', requeued: [], rejected: problems }, () =>
            table(
              ['id', 'why'],
              problems.map((p) => [p.id, p.reason]),
            ),
          );
          const missing = problems.filter((p) => p.reason === 'not found').map((p) => p.id);
          if (missing.length > 0)
            throw new NotFoundError(`job(s) not found: ${missing.join(', ')}; nothing changed`);
          throw new ConflictError(
            'conflict',
            `job(s) ${problems.map((p) => p.id).join(', ')} cannot be requeued; nothing changed`,
          );
        }
        const apply = mayApply(cmd, {
          plan: { action: 'requeue', targets },
          human: () =>
            table(
              ['id', 'status', 'lease token'],
              targets.map((t) => [t.id, t.status, t.leaseToken]),
            ),
          count: targets.length,
          bulk: targets.length > 1,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const changed = await requeueJobs(db, targets, {
          action: 'requeue',
          actor: actorOf(cmd),
          reason: o.reason,
          resetAttempts: false,
        });
        report(cmd, 'requeue', changed, targets);
      },
    );

  program
    .command('release-stuck')
    .description(
      'force-release running jobs whose worker looks gone: past their lease by default, or with no heartbeat for --older-than; each fenced like requeue',
    )
    .addOption(
      new Option('--older-than <duration>', 'no heartbeat for this long (default: lease expired)').argParser(
        (v) => parseDuration(v, '--older-than'),
      ),
    )
    .option('--worker <id>', "only this worker's jobs (locked_by)")
    .addOption(new Option('--queue <name>', 'only this queue').argParser(parseQueueName))
    .addOption(
      new Option('--limit <n>', 'at most this many')
        .default(100)
        .argParser((v) => parseIntInRange(v, '--limit', 1, 10_000)),
    )
    .option('--reason <text>', 'why (kept in last_error and the audit)', 'released stuck job')
    .option('--yes', 'apply (without it the jobs are only listed)')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText(
      'after',
      examples(
        'taskctl release-stuck --dry-run',
        'taskctl release-stuck --older-than 10m --yes --reason "consumer crash loop, INC-231"',
        'taskctl release-stuck --worker consumer-2024/abc --older-than 0s --yes',
      ),
    )
    .action(
      async (
        o: {
          olderThan?: number;
          worker?: string;
          queue?: string;
          limit: number;
          reason: string;
          yes?: boolean;
          dryRun?: boolean;
        },
        cmd: Command,
      ) => {
        const db = database();
        const stuck = await findStuckJobs(db, {
          olderThanSeconds: o.olderThan,
          worker: o.worker,
          queue: o.queue,
          limit: o.limit,
        });
        if (stuck.length === 0) {
          emit(cmd, { action: 'release-stuck', requeued: [], skipped: [] }, () => 'no stuck jobs match');
          return;
        }
        const apply = mayApply(cmd, {
          plan: { action: 'release-stuck', targets: stuck },
          human: () =>
            table(
              ['id', 'queue', 'type', 'worker', 'locked for', 'lease', 'attempt'],
              stuck.map((s) => [
                s.id,
                s.queue,
                s.type,
                s.lockedBy,
                age(s.lockedForSeconds),
                `${s.leaseSeconds}s`,
                `${s.attempts}/${s.maxAttempts}`,
              ]),
            ),
          count: stuck.length,
          bulk: true,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const changed = await requeueJobs(db, stuck, {
          action: 'release-stuck',
          actor: actorOf(cmd),
          reason: o.reason,
          resetAttempts: false,
        });
        report(cmd, 'release-stuck', changed, stuck);
      },
    );

  program
    .command('retry-failed')
    .description(
      'dead-letter redrive: failed jobs back to queued with a fresh retry budget (cancelled jobs only with --include-cancelled)',
    )
    .addOption(
      new Option('--since <duration>', 'failed within this long').argParser((v) =>
        parseDuration(v, '--since'),
      ),
    )
    .option('--type <type>', 'only this task type')
    .addOption(new Option('--queue <name>', 'only this queue').argParser(parseQueueName))
    .option('--include-cancelled', 'also re-run jobs that were cancelled on purpose')
    .addOption(
      new Option('--limit <n>', 'at most this many')
        .default(100)
        .argParser((v) => parseIntInRange(v, '--limit', 1, 10_000)),
    )
    .option('--reason <text>', 'why (kept in last_error and the audit)', 'dead-letter redrive')
    .option('--yes', 'apply (without it the jobs are only listed)')
    .option('--dry-run', 'show what would change, change nothing')
    .addHelpText(
      'after',
      examples(
        'taskctl retry-failed --since 1h --type email.send --dry-run',
        'taskctl retry-failed --since 1h --type email.send --yes --reason "SMTP creds rotated"',
      ),
    )
    .action(
      async (
        o: {
          since?: number;
          type?: string;
          queue?: string;
          includeCancelled?: boolean;
          limit: number;
          reason: string;
          yes?: boolean;
          dryRun?: boolean;
        },
        cmd: Command,
      ) => {
        const db = database();
        const failed = await findFailedJobs(db, {
          sinceSeconds: o.since,
          type: o.type,
          queue: o.queue,
          includeCancelled: o.includeCancelled,
          limit: o.limit,
        });
        if (failed.length === 0) {
          emit(cmd, { action: 'retry-failed', requeued: [], skipped: [] }, () => 'no failed jobs match');
          return;
        }
        const apply = mayApply(cmd, {
          plan: { action: 'retry-failed', targets: failed },
          human: () =>
            table(
              ['id', 'queue', 'type', 'attempts', 'finished', 'error'],
              failed.map((f) => [
                f.id,
                f.queue,
                f.type,
                `${f.attempts}/${f.maxAttempts}`,
                f.finishedAt,
                (f.lastError as { message?: string } | null)?.message?.slice(0, 60),
              ]),
            ),
          count: failed.length,
          bulk: true,
          yes: o.yes,
          dryRun: o.dryRun,
        });
        if (!apply) return;
        const changed = await requeueJobs(db, failed, {
          action: 'retry-failed',
          actor: actorOf(cmd),
          reason: o.reason,
          resetAttempts: true,
        });
        report(cmd, 'retry-failed', changed, failed);
      },
    );
}
