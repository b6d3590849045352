import { existsSync, readFileSync, rmSync } from 'node:fs';
import { formatTable, type SummaryRow } from './harness.ts';

/** Prints the summary table of every scenario the run executed. */
export default function setup() {
  const file = process.env.FAULT_SUMMARY_FILE;
  if (file) rmSync(file, { force: true });
  return () => {
    if (!file || !existsSync(file)) return;
    const rows = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as SummaryRow);
    rmSync(file, { force: true });
    process.stdout.write(`\nFault suite summary\n${formatTable(rows)}\n`);
  };
}
