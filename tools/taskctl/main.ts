/**
 * taskctl: the operator CLI. Every manual step of docs/RUNBOOK.md is a command here, audited
 * (who, when, why) and fenced against the workers it races. Exit codes: 0 ok, 1 check failed,
 * 2 usage error, 3 not found / conflict, 4 database unreachable.
 */
import { Command, CommanderError, Option } from 'commander';
import { registerCancel } from './commands/cancel.ts';
import { registerChecks } from './commands/checks.ts';
import { registerDashboard } from './commands/dashboard.ts';
import { registerEnqueue } from './commands/enqueue.ts';
import { registerJobs } from './commands/jobs.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerQueues } from './commands/queues.ts';
import { registerRequeue } from './commands/requeue.ts';
import { registerSchedules } from './commands/schedules.ts';
import { registerStatus } from './commands/status.ts';
import { closeDatabase } from './context.ts';
import { errorLine, exitCodeFor } from './errors.ts';
import { examples } from './render.ts';

const EXIT_CODES = `
Exit codes:
  0  ok
  1  check failed (health, preflight, migrate refused)
  2  usage error (bad id, duration, JSON, option; bulk change without --yes)
  3  not found / conflict (unknown job, job in the wrong state, changed meanwhile)
  4  database unreachable

Environment:
  DATABASE_URL (or DATABASE_DSN)  connection string (required)
  TASKCTL_ACTOR                   who is acting (default: the OS user)
  PUSHGATEWAY_URL                 checked by health when set`;

export function buildProgram(): Command {
  const program = new Command('taskctl')
    .description('Operator CLI for durable-task-engine: inspect, requeue, cancel, drain, check a release.')
    .option('--json', 'machine-readable output')
    .addOption(new Option('--actor <name>', 'who is acting, recorded on every change').env('TASKCTL_ACTOR'))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      // Commander's own errors are one line already; ours are printed in main().
      writeErr: (s) => process.stderr.write(s),
    })
    .addHelpText(
      'after',
      `${examples('taskctl status', 'taskctl release-stuck --older-than 10m --dry-run', 'taskctl preflight --metrics-url http://127.0.0.1:3000/metrics')}\n${EXIT_CODES}`,
    );
  registerStatus(program);
  registerJobs(program);
  registerRequeue(program);
  registerCancel(program);
  registerQueues(program);
  registerSchedules(program);
  registerMigrate(program);
  registerChecks(program);
  registerEnqueue(program);
  registerDashboard(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    const code = exitCodeFor(err);
    // Commander already printed its message (or the help); everything else gets one line.
    if (!(err instanceof CommanderError)) {
      process.stderr.write(`taskctl: ${errorLine(err)}\n`);
    }
    return code;
  } finally {
    await closeDatabase();
  }
}

process.exitCode = await main(process.argv);
