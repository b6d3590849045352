import { type Command, Option } from 'commander';
import { enqueueByOperator, UnknownTaskTypeError, ValidationError } from '../../../functions/engine/index.ts';
import { createRegistry } from '../../../functions/tasks/index.ts';
import { mayApply } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { parseDuration, parseIntInRange, parseJson, parseQueueName } from '../parse.ts';
import { examples, keyValues } from '../render.ts';

interface EnqueueOptions {
  payload?: string;
  queue?: string;
  priority?: number;
  delay?: number;
  maxAttempts?: number;
  idempotencyKey?: string;
  validate: boolean;
  dryRun?: boolean;
}

export function registerEnqueue(program: Command): void {
  program
    .command('enqueue')
    .description(
      "enqueue one job (smoke tests): the payload is checked against the task registry's schema, as the API does",
    )
    .argument('<type>', 'task type, e.g. example.echo')
    .option('--payload <json>', 'payload as JSON', 'null')
    .addOption(new Option('--queue <name>', 'queue').argParser(parseQueueName))
    .addOption(
      new Option('--priority <n>', 'higher runs first').argParser((v) =>
        parseIntInRange(v, '--priority', -32768, 32767),
      ),
    )
    .addOption(
      new Option('--delay <duration>', 'run after this long').argParser((v) => parseDuration(v, '--delay')),
    )
    .addOption(
      new Option('--max-attempts <n>', 'retry budget').argParser((v) =>
        parseIntInRange(v, '--max-attempts', 1, 1000),
      ),
    )
    .option('--idempotency-key <key>', 'same key + same request: the existing job')
    .option('--no-validate', 'skip the registry check (a task type this build does not know)')
    .option('--dry-run', 'validate only')
    .addHelpText(
      'after',
      examples(
        `taskctl enqueue example.echo --payload '{"hello":"world"}'`,
        `taskctl enqueue example.sleep --payload '{"ms":500}' --queue smoke --json`,
      ),
    )
    .action(async (type: string, o: EnqueueOptions, cmd: Command) => {
      let payload = parseJson(o.payload ?? 'null', '--payload JSON');
      const task = createRegistry().get(type);
      if (o.validate) {
        if (!task) throw new UnknownTaskTypeError(type);
        const parsed = task.schema.safeParse(payload);
        if (!parsed.success) {
          const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`);
          throw new ValidationError(`payload for ${type} is invalid: ${issues.join('; ')}`);
        }
        payload = parsed.data;
      }
      const request = {
        type,
        payload,
        queue: o.queue,
        priority: o.priority,
        delaySeconds: o.delay,
        maxAttempts: o.maxAttempts ?? task?.maxAttempts,
        idempotencyKey: o.idempotencyKey,
      };
      if (
        !mayApply(cmd, {
          plan: { action: 'enqueue', request },
          human: () => JSON.stringify(request),
          count: 1,
          bulk: false,
          dryRun: o.dryRun,
        })
      )
        return;
      const act = { actor: actorOf(cmd), reason: 'taskctl enqueue' };
      const result = await enqueueByOperator(database(), request, act);
      emit(cmd, result, () =>
        keyValues([
          [result.created ? 'enqueued' : 'existing job (idempotent replay)', result.job.id],
          ['queue', result.job.queue],
          ['type', result.job.type],
          ['status', result.job.status],
          ['run at', result.job.runAt],
        ]),
      );
    });
}
