import type { Command } from 'commander';
import { emit } from './context.ts';
import { UsageError } from './errors.ts';

export interface Gate {
  /** What would change, shown before any change: by --dry-run, or when --yes is missing. */
  plan: Record<string, unknown>;
  human: () => string;
  count: number;
  /** A bulk change (many jobs, or selected by filter) needs --yes. */
  bulk: boolean;
  yes?: boolean | undefined;
  dryRun?: boolean | undefined;
}

/** The two options of every changing command. */
export interface GateOptions {
  yes?: boolean | undefined;
  dryRun?: boolean | undefined;
}

/** Adds --yes (described for this command) and --dry-run. */
export function withGate(command: Command, yesHelp: string): Command {
  return command.option('--yes', yesHelp).option('--dry-run', 'show what would change, change nothing');
}

/** True when the change may go ahead; otherwise the plan was printed (and --yes asked for). */
export function mayApply(cmd: Command, gate: Gate, options: GateOptions = {}): boolean {
  const g = { ...gate, yes: options.yes ?? gate.yes, dryRun: options.dryRun ?? gate.dryRun };
  if (g.dryRun) {
    emit(cmd, { dryRun: true, ...g.plan }, () => `${g.human()}\n(dry run: nothing changed)`);
    return false;
  }
  if (g.bulk && !g.yes) {
    emit(cmd, { dryRun: true, ...g.plan }, g.human);
    throw new UsageError(`${g.count} item(s) would change; re-run with --yes to apply`);
  }
  return true;
}
