import type { Command } from 'commander';
import {
  addSchedule,
  type CatchUp,
  listSchedules,
  NAMES,
  QUEUE_RETENTIONS,
  type QueueRetention,
  removeSchedule,
  type Schedule,
  setLimits,
  setRetention,
  setScheduleState,
} from '../../../functions/engine/index.ts';
import { createRegistry } from '../../../functions/tasks/index.ts';
import { actorOf, database, emit } from '../context.ts';
import { UsageError } from '../errors.ts';
import { parseIntInRange, parseJson, parseQueueName } from '../parse.ts';
import { examples, table } from '../render.ts';

const shown = (s: Schedule) => ({
  name: s.name,
  cron: s.cron,
  timezone: s.timezone,
  type: s.type,
  payload: s.payload,
  queue: s.queue,
  priority: s.priority,
  maxAttempts: s.maxAttempts,
  enabled: s.enabled,
  catchUp: s.catchUp,
  source: s.source,
  nextAt: s.nextAt,
  lastRunAt: s.lastRunAt,
});

function registerAdd(schedule: Command): void {
  schedule
    .command('add')
    .description('create or replace a run-time schedule (a code-defined one is changed in code)')
    .argument('<name>', `schedule name, ${NAMES.schedule.rule}`)
    .requiredOption('--cron <expr>', 'standard 5-field cron (or 6, seconds first), quoted')
    .requiredOption('--type <type>', 'task type (must be registered; the payload is checked against it)')
    .option('--payload <json>', 'the job payload (JSON)', '{}')
    .option('--timezone <tz>', 'IANA time zone', 'UTC')
    .option('--queue <queue>', 'queue of the jobs', 'default')
    .option('--priority <n>', 'priority of the jobs')
    .option('--max-attempts <n>', 'max attempts of the jobs')
    .option('--catch-up <mode>', 'after an outage: skip | latest | all (bounded)', 'latest')
    .addHelpText(
      'after',
      examples(
        'taskctl schedule add nightly-report --cron "0 3 * * *" --timezone Europe/Berlin --type report.build',
        `taskctl schedule add ping --cron "*/5 * * * *" --type example.echo --payload '{"hello":"world"}'`,
      ),
    )
    .action(
      async (
        name: string,
        o: {
          cron: string;
          type: string;
          payload: string;
          timezone: string;
          queue: string;
          priority?: string;
          maxAttempts?: string;
          catchUp: string;
        },
        cmd: Command,
      ) => {
        if (!['skip', 'latest', 'all'].includes(o.catchUp))
          throw new UsageError(`--catch-up must be skip, latest or all, got ${JSON.stringify(o.catchUp)}`);
        const def = {
          name,
          cron: o.cron,
          timezone: o.timezone,
          type: o.type,
          payload: parseJson(o.payload, '--payload'),
          queue: parseQueueName(o.queue),
          catchUp: o.catchUp as CatchUp,
          ...(o.priority !== undefined
            ? { priority: parseIntInRange(o.priority, '--priority', -32768, 32767) }
            : {}),
          ...(o.maxAttempts !== undefined
            ? { maxAttempts: parseIntInRange(o.maxAttempts, '--max-attempts', 1, 1000) }
            : {}),
        };
        const { schedule: s } = await addSchedule(
          database(),
          def,
          { actor: actorOf(cmd), reason: null },
          createRegistry(),
        );
        emit(cmd, shown(s), () => `schedule ${s.name}: "${s.cron}" ${s.timezone} -> ${s.type} on ${s.queue}`);
      },
    );
}

function registerListAndRemove(schedule: Command): void {
  schedule
    .command('list')
    .description(
      'every schedule, its cursor (next occurrence not yet enqueued) and its last enqueued occurrence',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const list = await listSchedules(database());
      emit(cmd, { schedules: list.map(shown) }, () =>
        table(
          ['name', 'cron', 'timezone', 'type', 'queue', 'enabled', 'catch-up', 'source', 'next', 'last run'],
          list.map((s) => [
            s.name,
            s.cron,
            s.timezone,
            s.type,
            s.queue,
            s.enabled ? 'yes' : 'PAUSED',
            s.catchUp,
            s.source,
            s.nextAt?.toISOString() ?? '-',
            s.lastRunAt?.toISOString() ?? '-',
          ]),
        ),
      );
    });

  schedule
    .command('remove')
    .description('remove a run-time schedule (jobs already enqueued stay); needs --yes')
    .argument('<name>')
    .option('--yes', 'really remove it')
    .action(async (name: string, o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes) throw new UsageError(`schedule remove ${name}: re-run with --yes to remove it`);
      await removeSchedule(database(), name, { actor: actorOf(cmd), reason: null });
      emit(cmd, { name, removed: true }, () => `removed schedule ${name}`);
    });
}

/** Pause and resume, audited as the dashboard's are (queue: the schedule's queue). */
function registerPauseResume(schedule: Command): void {
  for (const [verb, enabled] of [
    ['pause', false],
    ['resume', true],
  ] as const) {
    schedule
      .command(verb)
      .description(
        enabled
          ? 'resume a paused schedule (catchUp decides what happens to the occurrences missed meanwhile)'
          : 'stop enqueuing a schedule’s occurrences (code-defined ones too)',
      )
      .argument('<name>')
      .action(async (name: string, _o: unknown, cmd: Command) => {
        const s = await setScheduleState(database(), name, enabled, { actor: actorOf(cmd), reason: null });
        emit(cmd, shown(s), () => `schedule ${name} ${enabled ? 'resumed' : 'paused'}`);
      });
  }
}

function registerSetLimit(queue: Command): void {
  queue
    .command('set-limit')
    .description(
      'limit a queue across the whole fleet: at most N running jobs (--max-running N, 0 or none removes it) and/or R claims per second with a burst (--rate R [--burst B], none removes it)',
    )
    .argument('<queue>')
    .option('--max-running <n|none>', 'most running (claimed) jobs of the queue at once')
    .option('--rate <r|none>', 'claims per second (token bucket)')
    .option(
      '--burst <b>',
      'bucket size: claims allowed at once after a quiet spell (default: one second of the rate)',
    )
    .addHelpText(
      'after',
      examples(
        'taskctl queue set-limit emails --max-running 5',
        'taskctl queue set-limit emails --rate 20 --burst 40',
        'taskctl queue set-limit emails --max-running none --rate none',
      ),
    )
    .action(async (name: string, o: { maxRunning?: string; rate?: string; burst?: string }, cmd: Command) => {
      const queueName = parseQueueName(name);
      const num = (raw: string, what: string): number => {
        if (!/^\d+(\.\d+)?$/.test(raw.trim()))
          throw new UsageError(`${what} must be a non-negative number or none, got ${JSON.stringify(raw)}`);
        return Number(raw);
      };
      const change: { maxRunning?: number | null; rate?: number | null; burst?: number | null } = {};
      if (o.maxRunning !== undefined) {
        const n = o.maxRunning === 'none' ? 0 : num(o.maxRunning, '--max-running');
        change.maxRunning = n === 0 ? null : n;
      }
      if (o.rate !== undefined) {
        const r = o.rate === 'none' ? 0 : num(o.rate, '--rate');
        change.rate = r === 0 ? null : r;
      }
      if (o.burst !== undefined) change.burst = num(o.burst, '--burst');
      if (change.maxRunning === undefined && change.rate === undefined)
        throw new UsageError('give --max-running and/or --rate');
      const limits = await setLimits(database(), queueName, change, { actor: actorOf(cmd), reason: null });
      emit(
        cmd,
        limits,
        () =>
          `queue ${limits.name}: max running ${limits.maxRunning ?? 'none'}, rate ${
            limits.ratePerSecond === null ? 'none' : `${limits.ratePerSecond}/s (burst ${limits.rateBurst})`
          }`,
      );
    });
}

function registerSetRetention(queue: Command): void {
  queue
    .command('set-retention')
    .description(
      "what happens to a queue's completed jobs: keep (the default) keeps them for the reaper's retention (RETENTION_DAYS); delete deletes each one as it completes (failed jobs are kept; idempotency keys stay answerable for the retention)",
    )
    .argument('<queue>')
    .argument('<retention>', 'keep or delete')
    .option('--reason <text>', 'why (kept in the audit row)')
    .addHelpText(
      'after',
      examples(
        'taskctl queue set-retention metrics.ingest delete --reason "INC-88: 40M rows a day nobody reads"',
        'taskctl queue set-retention metrics.ingest keep',
      ),
    )
    .action(async (name: string, retention: string, o: { reason?: string }, cmd: Command) => {
      const queueName = parseQueueName(name);
      if (!QUEUE_RETENTIONS.includes(retention as QueueRetention))
        throw new UsageError(`retention must be keep or delete, got ${JSON.stringify(retention)}`);
      const set = await setRetention(database(), queueName, retention as QueueRetention, {
        actor: actorOf(cmd),
        reason: o.reason ?? null,
      });
      emit(cmd, set, () =>
        set.retention === 'delete'
          ? `queue ${set.name}: retention delete (completed jobs are deleted as they complete)`
          : `queue ${set.name}: retention keep (completed jobs are kept for the retention)`,
      );
    });
}

export function registerSchedules(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('recurring schedules: cron + IANA time zone, each occurrence enqueued exactly once');
  registerAdd(schedule);
  registerListAndRemove(schedule);
  registerPauseResume(schedule);
  const queue = program.command('queue').description('per-queue settings');
  registerSetLimit(queue);
  registerSetRetention(queue);
}
