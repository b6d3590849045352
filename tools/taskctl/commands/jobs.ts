import { type Command, Option } from 'commander';
import {
  getJob,
  JOB_STATUSES,
  type JobStatus,
  listAudit,
  listJobs,
  NotFoundError,
  toJob,
} from '../../../functions/engine/index.ts';
import { database, emit } from '../context.ts';
import { parseId, parseIntInRange, parseQueueName } from '../parse.ts';
import { examples, keyValues, table } from '../render.ts';

/**
 * `jobs show`'s fields in display order: a column's label is its name spelled out, except where
 * two values share a line (attempts of max) or a unit is added (lease seconds).
 */
const SHOWN = [
  'id queue type status priority runAt attempts leaseToken lockedBy lockedAt lease startedAt',
  'finishedAt createdAt updatedAt idempotencyKey payload lastError result',
]
  .join(' ')
  .split(' ');
const LABELS: Record<string, string> = {
  startedAt: 'started',
  finishedAt: 'finished',
  createdAt: 'created',
  updatedAt: 'updated',
};
const spelled = (key: string) => LABELS[key] ?? key.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);

function jobFields(job: ReturnType<typeof toJob>): Array<[string, unknown]> {
  const shown: Record<string, unknown> = {
    ...job,
    attempts: `${job.attempts}/${job.maxAttempts}`,
    lease: `${job.leaseSeconds}s`,
  };
  return SHOWN.map((key) => [spelled(key), shown[key]]);
}

function registerShow(jobs: Command): void {
  jobs
    .command('show')
    .description('one job: every column, and its manual history (who, when, why)')
    .argument('<id>', 'job id')
    .addHelpText(
      'after',
      examples('taskctl jobs show 4812', 'taskctl --json jobs show 4812 | jq .job.lastError'),
    )
    .action(async (rawId: string, _o: unknown, cmd: Command) => {
      const id = parseId(rawId);
      const db = database();
      const row = await getJob(db, id);
      if (!row) throw new NotFoundError(`job ${id} not found`);
      const job = toJob(row);
      const audit = await listAudit(db, id);
      emit(cmd, { job, audit }, () =>
        [
          keyValues(jobFields(job)),
          '',
          'manual changes:',
          table(
            ['at', 'action', 'actor', 'reason'],
            audit.map((a) => [a.at, a.action, a.actor, a.reason]),
          ),
        ].join('\n'),
      );
    });
}

function registerList(jobs: Command): void {
  jobs
    .command('list')
    .description('jobs newest first, paged by id: pass the printed next cursor as --before')
    .addOption(new Option('--status <status>', 'only this status').choices(JOB_STATUSES))
    .addOption(new Option('--queue <name>', 'only this queue').argParser(parseQueueName))
    .option('--type <type>', 'only this task type')
    .addOption(
      new Option('--limit <n>', 'page size')
        .default(50)
        .argParser((v) => parseIntInRange(v, '--limit', 1, 1000)),
    )
    .addOption(new Option('--before <id>', 'page cursor: ids below this one').argParser(parseId))
    .addHelpText(
      'after',
      examples(
        'taskctl jobs list --status failed --type email.send --limit 20',
        'taskctl jobs list --before 4800',
      ),
    )
    .action(
      async (
        o: { status?: JobStatus; queue?: string; type?: string; limit: number; before?: string },
        cmd: Command,
      ) => {
        const rows = await listJobs(database(), o);
        const list = rows.map(toJob);
        const nextCursor = list.length === o.limit ? list[list.length - 1]!.id : null;
        emit(cmd, { jobs: list, nextCursor }, () =>
          [
            table(
              ['id', 'queue', 'type', 'status', 'attempts', 'run at', 'worker', 'updated'],
              list.map((j) => [
                j.id,
                j.queue,
                j.type,
                j.status,
                `${j.attempts}/${j.maxAttempts}`,
                j.runAt,
                j.lockedBy,
                j.updatedAt,
              ]),
            ),
            ...(nextCursor ? [`next page: --before ${nextCursor}`] : []),
          ].join('\n'),
        );
      },
    );
}

export function registerJobs(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('inspect jobs')
    .addHelpText(
      'after',
      examples('taskctl jobs show 4812', 'taskctl jobs list --status running --queue default'),
    );
  registerShow(jobs);
  registerList(jobs);
}
