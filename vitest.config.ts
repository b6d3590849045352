import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/unit/**/*.test.ts',
      'test/integration/**/*.test.ts',
      'test/infra/**/*.test.ts',
      'test/e2e/**/*.test.ts',
      'test/aws/**/*.test.ts',
      'test/client/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: two files at a time keeps timing-sensitive tests (leases, deadlines) honest.
    maxWorkers: 2,
  },
});
