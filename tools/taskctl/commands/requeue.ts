import { type Command, Option } from 'commander';
import {
  ConflictError,
  type FailedJob,
  findFailedJobs,
  findStuckJobs,
  NotFoundError,
  planRequeue,
  type Requeued,
  type RequeueTarget,
  releaseStuck,
  requeue,
  retryFailed,
  type StuckJob,
} from '../../../functions/engine/index.ts';
import type { PgDb } from '../../../functions/platform/db.ts';
import { type GateOptions, mayApply, withGate } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { PartialFailureError } from '../errors.ts';
import { parseDuration, parseIds, parseIntInRange, parseQueueName } from '../parse.ts';
import { age, examples, table } from '../render.ts';

type Action = 'requeue' | 'release-stuck' | 'retry-failed';
const RUN = { requeue, 'release-stuck': releaseStuck, 'retry-failed': retryFailed } as const;

/** Prints what changed and what did not; a target someone else changed in between is exit 3. */
function report(cmd: Command, action: Action, changed: Requeued[], targets: readonly RequeueTarget[]): void {
  const done = new Set(changed.map((c) => c.id));
  const skipped = targets
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

/** Shows the targets, asks for --yes when `bulk`, then requeues them fenced on what was read. */
async function confirmAndRequeue(
  cmd: Command,
  action: Action,
  targets: readonly RequeueTarget[],
  shown: { headers: string[]; rows: unknown[][] },
  o: GateOptions & { reason: string; bulk: boolean },
): Promise<void> {
  const human = () => table(shown.headers, shown.rows);
  if (!mayApply(cmd, { plan: { action, targets }, human, count: targets.length, bulk: o.bulk }, o)) return;
  const changed = await RUN[action](database(), targets, { actor: actorOf(cmd), reason: o.reason });
  report(cmd, action, changed, targets);
}

const limitOption = () =>
  new Option('--limit <n>', 'at most this many')
    .default(100)
    .argParser((v) => parseIntInRange(v, '--limit', 1, 10_000));
const durationOption = (flag: string, help: string) =>
  new Option(`${flag} <duration>`, help).argParser((v) => parseDuration(v, flag));
const queueOption = () => new Option('--queue <name>', 'only this queue').argParser(parseQueueName);
const reasonOption = (fallback: string) =>
  new Option('--reason <text>', 'why (kept in last_error and the audit)').default(fallback);

function registerRequeueIds(program: Command): void {
  const command = program
    .command('requeue')
    .description(
      'force-release running jobs (or re-run failed ones) back to queued, fenced on the lease token read, so a worker that completes meanwhile wins and nothing runs twice',
    )
    .argument('<id...>', 'job ids')
    .addOption(reasonOption('manual requeue'));
  withGate(command, 'apply to more than one job')
    .addHelpText(
      'after',
      examples(
        'taskctl requeue 4812 --reason "worker w-17 hung on a TLS handshake"',
        'taskctl requeue 4812 4813 4814 --reason "host lost" --yes',
      ),
    )
    .action(async (rawIds: string[], o: GateOptions & { reason: string }, cmd: Command) => {
      const { targets, refused } = await planRequeue(database(), parseIds(rawIds));
      if (refused.length > 0) {
        emit(cmd, { action: 'requeue', requeued: [], rejected: refused }, () =>
          table(
            ['id', 'why'],
            refused.map((p) => [p.id, p.reason]),
          ),
        );
        const missing = refused.filter((p) => p.reason === 'not found').map((p) => p.id);
        if (missing.length > 0)
          throw new NotFoundError(`job(s) not found: ${missing.join(', ')}; nothing changed`);
        throw new ConflictError(
          'conflict',
          `job(s) ${refused.map((p) => p.id).join(', ')} cannot be requeued; nothing changed`,
        );
      }
      const rows = targets.map((t) => [t.id, t.status, t.leaseToken]);
      await confirmAndRequeue(
        cmd,
        'requeue',
        targets,
        { headers: ['id', 'status', 'lease token'], rows },
        {
          ...o,
          bulk: targets.length > 1,
        },
      );
    });
}

/** What release-stuck and retry-failed share: a filter's queue and limit, the reason, the gate. */
interface SelectOptions extends GateOptions {
  queue?: string;
  limit: number;
  reason: string;
}

/**
 * A command that finds jobs by a filter and requeues them once confirmed (a bulk change): its
 * filter's options (then --limit, --reason and the --yes / --dry-run gate), what it finds, how
 * it shows each one, and what it says when nothing matches.
 */
interface FilterCommand<O extends SelectOptions, T extends RequeueTarget> {
  action: 'release-stuck' | 'retry-failed';
  description: string;
  filters: () => Option[];
  defaultReason: string;
  examples: string[];
  find: (db: PgDb, o: O) => Promise<T[]>;
  headers: string[];
  row: (found: T) => unknown[];
  none: string;
}

function registerFilterCommand<O extends SelectOptions, T extends RequeueTarget>(
  program: Command,
  spec: FilterCommand<O, T>,
): void {
  const command = program.command(spec.action).description(spec.description);
  for (const option of spec.filters()) command.addOption(option);
  command.addOption(limitOption()).addOption(reasonOption(spec.defaultReason));
  withGate(command, 'apply (without it the jobs are only listed)')
    .addHelpText('after', examples(...spec.examples))
    .action(async (o: O, cmd: Command) => {
      const found = await spec.find(database(), o);
      if (found.length === 0) {
        emit(cmd, { action: spec.action, requeued: [], skipped: [] }, () => spec.none);
        return;
      }
      const shown = { headers: spec.headers, rows: found.map(spec.row) };
      await confirmAndRequeue(cmd, spec.action, found, shown, { ...o, bulk: true });
    });
}

interface StuckOptions extends SelectOptions {
  olderThan?: number;
  worker?: string;
}

const RELEASE_STUCK: FilterCommand<StuckOptions, StuckJob> = {
  action: 'release-stuck',
  description:
    'force-release running jobs whose worker looks gone: past their lease by default, or with no heartbeat for --older-than; each fenced like requeue',
  filters: () => [
    durationOption('--older-than', 'no heartbeat for this long (default: lease expired)'),
    new Option('--worker <id>', "only this worker's jobs (locked_by)"),
    queueOption(),
  ],
  defaultReason: 'released stuck job',
  examples: [
    'taskctl release-stuck --dry-run',
    'taskctl release-stuck --older-than 10m --yes --reason "consumer crash loop, INC-231"',
    'taskctl release-stuck --worker consumer-2024/abc --older-than 0s --yes',
  ],
  find: (db, o) =>
    findStuckJobs(db, { olderThanSeconds: o.olderThan, worker: o.worker, queue: o.queue, limit: o.limit }),
  headers: ['id', 'queue', 'type', 'worker', 'locked for', 'lease', 'attempt'],
  row: (s) => [
    s.id,
    s.queue,
    s.type,
    s.lockedBy,
    age(s.lockedForSeconds),
    `${s.leaseSeconds}s`,
    `${s.attempts}/${s.maxAttempts}`,
  ],
  none: 'no stuck jobs match',
};

interface FailedOptions extends SelectOptions {
  since?: number;
  type?: string;
  includeCancelled?: boolean;
}

const RETRY_FAILED: FilterCommand<FailedOptions, FailedJob> = {
  action: 'retry-failed',
  description:
    'dead-letter redrive: failed jobs back to queued with a fresh retry budget (cancelled jobs only with --include-cancelled)',
  filters: () => [
    durationOption('--since', 'failed within this long'),
    new Option('--type <type>', 'only this task type'),
    queueOption(),
    new Option('--include-cancelled', 'also re-run jobs that were cancelled on purpose'),
  ],
  defaultReason: 'dead-letter redrive',
  examples: [
    'taskctl retry-failed --since 1h --type email.send --dry-run',
    'taskctl retry-failed --since 1h --type email.send --yes --reason "SMTP creds rotated"',
  ],
  find: (db, o) =>
    findFailedJobs(db, {
      sinceSeconds: o.since,
      type: o.type,
      queue: o.queue,
      includeCancelled: o.includeCancelled,
      limit: o.limit,
    }),
  headers: ['id', 'queue', 'type', 'attempts', 'finished', 'error'],
  row: (f) => [
    f.id,
    f.queue,
    f.type,
    `${f.attempts}/${f.maxAttempts}`,
    f.finishedAt,
    (f.lastError as { message?: string } | null)?.message?.slice(0, 60),
  ],
  none: 'no failed jobs match',
};

export function registerRequeue(program: Command): void {
  registerRequeueIds(program);
  registerFilterCommand(program, RELEASE_STUCK);
  registerFilterCommand(program, RETRY_FAILED);
}
