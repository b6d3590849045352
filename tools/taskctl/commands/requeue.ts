import { type Command, Option } from 'commander';
import {
  ConflictError,
  findFailedJobs,
  findStuckJobs,
  NotFoundError,
  planRequeue,
  type Requeued,
  type RequeueTarget,
  releaseStuck,
  requeue,
  retryFailed,
} from '../../../functions/engine/index.ts';
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

/** The options after the filter's own: --limit, --reason, and the --yes / --dry-run gate. */
function selectionTail(command: Command, defaultReason: string): Command {
  command.addOption(limitOption()).addOption(reasonOption(defaultReason));
  return withGate(command, 'apply (without it the jobs are only listed)');
}

/** What a filter found, shown and requeued once confirmed (a bulk change); nothing found is said so. */
async function requeueFound(
  cmd: Command,
  action: 'release-stuck' | 'retry-failed',
  found: readonly RequeueTarget[],
  shown: { headers: string[]; rows: unknown[][] },
  o: SelectOptions,
  none: string,
): Promise<void> {
  if (found.length === 0) {
    emit(cmd, { action, requeued: [], skipped: [] }, () => none);
    return;
  }
  await confirmAndRequeue(cmd, action, found, shown, { ...o, bulk: true });
}

interface StuckOptions extends SelectOptions {
  olderThan?: number;
  worker?: string;
}

function registerReleaseStuck(program: Command): void {
  const command = program
    .command('release-stuck')
    .description(
      'force-release running jobs whose worker looks gone: past their lease by default, or with no heartbeat for --older-than; each fenced like requeue',
    )
    .addOption(durationOption('--older-than', 'no heartbeat for this long (default: lease expired)'))
    .option('--worker <id>', "only this worker's jobs (locked_by)")
    .addOption(queueOption());
  selectionTail(command, 'released stuck job')
    .addHelpText(
      'after',
      examples(
        'taskctl release-stuck --dry-run',
        'taskctl release-stuck --older-than 10m --yes --reason "consumer crash loop, INC-231"',
        'taskctl release-stuck --worker consumer-2024/abc --older-than 0s --yes',
      ),
    )
    .action(async (o: StuckOptions, cmd: Command) => {
      const f = { olderThanSeconds: o.olderThan, worker: o.worker, queue: o.queue, limit: o.limit };
      const stuck = await findStuckJobs(database(), f);
      const headers = ['id', 'queue', 'type', 'worker', 'locked for', 'lease', 'attempt'];
      const rows = stuck.map((s) => [
        s.id,
        s.queue,
        s.type,
        s.lockedBy,
        age(s.lockedForSeconds),
        `${s.leaseSeconds}s`,
        `${s.attempts}/${s.maxAttempts}`,
      ]);
      await requeueFound(cmd, 'release-stuck', stuck, { headers, rows }, o, 'no stuck jobs match');
    });
}

interface FailedOptions extends SelectOptions {
  since?: number;
  type?: string;
  includeCancelled?: boolean;
}

function registerRetryFailed(program: Command): void {
  const command = program
    .command('retry-failed')
    .description(
      'dead-letter redrive: failed jobs back to queued with a fresh retry budget (cancelled jobs only with --include-cancelled)',
    )
    .addOption(durationOption('--since', 'failed within this long'))
    .option('--type <type>', 'only this task type')
    .addOption(queueOption())
    .option('--include-cancelled', 'also re-run jobs that were cancelled on purpose');
  selectionTail(command, 'dead-letter redrive')
    .addHelpText(
      'after',
      examples(
        'taskctl retry-failed --since 1h --type email.send --dry-run',
        'taskctl retry-failed --since 1h --type email.send --yes --reason "SMTP creds rotated"',
      ),
    )
    .action(async (o: FailedOptions, cmd: Command) => {
      const failed = await findFailedJobs(database(), {
        sinceSeconds: o.since,
        type: o.type,
        queue: o.queue,
        includeCancelled: o.includeCancelled,
        limit: o.limit,
      });
      const headers = ['id', 'queue', 'type', 'attempts', 'finished', 'error'];
      const rows = failed.map((f) => [
        f.id,
        f.queue,
        f.type,
        `${f.attempts}/${f.maxAttempts}`,
        f.finishedAt,
        (f.lastError as { message?: string } | null)?.message?.slice(0, 60),
      ]);
      await requeueFound(cmd, 'retry-failed', failed, { headers, rows }, o, 'no failed jobs match');
    });
}

export function registerRequeue(program: Command): void {
  registerRequeueIds(program);
  registerReleaseStuck(program);
  registerRetryFailed(program);
}
