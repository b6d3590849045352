import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The runbook's raw SQL (docs/RUNBOOK.md), verbatim: the statement that starts with `start`. */
export function runbookStatement(start: string): string {
  const runbook = readFileSync(join(import.meta.dirname, '../../docs/RUNBOOK.md'), 'utf8');
  const at = runbook.indexOf(start);
  if (at < 0) throw new Error(`docs/RUNBOOK.md no longer has ${start}`);
  return runbook.slice(at, runbook.indexOf(';', at) + 1);
}

/** The runbook's force-release ("Worker crash / restart") and safe cancel, verbatim. */
export const RUNBOOK_FORCE_RELEASE = runbookStatement("UPDATE jobs SET status = 'queued', locked_at = NULL");
export const RUNBOOK_CANCEL = runbookStatement("UPDATE jobs SET status = 'failed', finished_at = now()");

/** A runbook statement with its placeholders filled. */
export const fill = (sql: string, v: { id: string; token?: string }) =>
  sql
    .replaceAll('<job_id>', String(Number(v.id)))
    .replaceAll('<lease_token>', String(Number(v.token ?? '0')))
    .replaceAll('<why>', 'test')
    .replaceAll('<you>', 'tester');
