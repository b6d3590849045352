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

/** True when the change may go ahead; otherwise the plan was printed (and --yes asked for). */
export function mayApply(cmd: Command, g: Gate): boolean {
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
