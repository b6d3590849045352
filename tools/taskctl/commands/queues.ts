import type { Command } from 'commander';
import { knownQueues, pausedQueues, setQueuesPaused } from '../../../functions/engine/index.ts';
import { type GateOptions, mayApply, withGate } from '../confirm.ts';
import { actorOf, database, emit } from '../context.ts';
import { parseQueueName } from '../parse.ts';
import { examples } from '../render.ts';

const NOTE_PAUSE =
  'consumers stop claiming from these queues at their next claim; running jobs finish. A queue first used after this pause is not paused: to stop everything, disable the consumer schedule (docs/RUNBOOK.md, "Drain and resume").';

interface Control {
  name: 'pause' | 'resume';
  description: string;
  reasonHelp: string;
  examples: string[];
  /** The queues meant when none is named: every queue known (pause), every paused one (resume). */
  all: typeof knownQueues;
  none: string;
}

const CONTROLS: Control[] = [
  {
    name: 'pause',
    description:
      'stop consumers claiming from queues (drain): running jobs finish, queued ones wait. No queue named: every queue known now (needs --yes)',
    reasonHelp: 'why (shown by status, kept in the audit)',
    examples: [
      'taskctl pause reports --reason "INC-231: downstream API rate-limiting us"',
      'taskctl pause --yes',
    ],
    all: knownQueues,
    none: '(no queues known)',
  },
  {
    name: 'resume',
    description:
      'let consumers claim from paused queues again. No queue named: every paused queue (needs --yes)',
    reasonHelp: 'why (kept in the audit)',
    examples: ['taskctl resume reports', 'taskctl resume --yes'],
    all: pausedQueues,
    none: '(no paused queues)',
  },
];

function registerControl(program: Command, c: Control): void {
  const command = program
    .command(c.name)
    .description(c.description)
    .argument('[queue...]', 'queue names')
    .option('--reason <text>', c.reasonHelp);
  withGate(command, 'needed when no queue is named')
    .addHelpText('after', examples(...c.examples))
    .action(async (names: string[], o: GateOptions & { reason?: string }, cmd: Command) => {
      const given = names.map(parseQueueName);
      const db = database();
      const queues = given.length > 0 ? [...new Set(given)] : await c.all(db);
      const gate = {
        plan: { action: c.name, queues },
        human: () => `would ${c.name}: ${queues.join(', ') || c.none}`,
        count: queues.length,
        // Resuming everything at once undoes every pause an incident put in place: as deliberate as pausing all.
        bulk: given.length === 0,
      };
      if (!mayApply(cmd, gate, o)) return;
      const actor = actorOf(cmd);
      await setQueuesPaused(db, queues, c.name === 'pause', { actor, reason: o.reason ?? null });
      const done = `${c.name === 'pause' ? 'paused' : 'resumed'}: ${queues.join(', ') || '(none)'}`;
      if (c.name === 'pause')
        emit(
          cmd,
          { action: 'pause', paused: queues, actor, note: NOTE_PAUSE },
          () => `${done}\n${NOTE_PAUSE}`,
        );
      else emit(cmd, { action: 'resume', resumed: queues, actor }, () => done);
    });
}

export function registerQueues(program: Command): void {
  for (const c of CONTROLS) registerControl(program, c);
}
