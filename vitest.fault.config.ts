import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Each scenario appends its row here; test/fault/global-setup.ts prints the table at the end.
const summaryFile = join(tmpdir(), `dte-fault-summary-${process.pid}.jsonl`);
process.env.FAULT_SUMMARY_FILE = summaryFile;

/**
 * The fault suite (`npm run test:fault`): kills, freezes, cuts off and restarts parts of the
 * engine on a throwaway PostgreSQL cluster. Kept out of `npm test`. Files run one at a time:
 * each starts its own cluster and consumer processes, and two cores cannot host two at once
 * without turning lease timings into noise.
 */
export default defineConfig({
  test: {
    include: ['test/fault/**/*.test.ts'],
    globalSetup: ['test/fault/global-setup.ts'],
    env: { FAULT_SUMMARY_FILE: summaryFile },
    fileParallelism: false,
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
