/**
 * The command line of `npm run bench` (bench/run.ts), parsed once at import:
 *
 *   --quick          one round, 20,000 jobs, the main scenario only (drain and enqueue)
 *   --rounds N       interleaved rounds (default 3, 1 with --quick)
 *   --jobs N         jobs of the main scenario (default 20,000)
 *   --only a,b       run these scenario ids (bench/scenarios/index.ts) and nothing else
 *   --big-rows N     finished rows of the bigtable scenario (default 5,000,000)
 *   --release-ref R  the git ref the previous-release scenario runs beside today's code (default a413667)
 */
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? Number(argv[i + 1]) : fallback;
};

export const ARGV: readonly string[] = argv;
/**
 * The previous release the previous-release scenario runs side by side with today's code: the
 * commit before issue 21's row model (its shipped figures are what "≤ 0.6× today's" means).
 */
export const RELEASE_REF = (() => {
  const i = argv.indexOf('--release-ref');
  const ref = i >= 0 ? argv[i + 1] : 'a413667';
  if (!ref || !/^[A-Za-z0-9][A-Za-z0-9._/-]{0,100}$/.test(ref)) throw new Error('--release-ref: a git ref');
  return ref;
})();
export const QUICK = flag('quick');
export const ROUNDS = option('rounds', QUICK ? 1 : 3);
export const JOBS = option('jobs', 20_000);
export const WORKERS = 4;
export const BIG_ROWS = option('big-rows', 5_000_000);
/**
 * The fixed claim of the raw loop and the engine-functions drains, and of the consumer's
 * previous defaults (BATCH_SIZE 50 before adaptive claims; consumer-fixed).
 */
export const BATCH = 50;
/**
 * The throughput tuning documented for users (README, "Tuning for throughput"): claim 500 per
 * statement and run up to 100 tasks at once. Judged against the raw loop at the same claim size.
 */
export const TUNED = { BATCH_SIZE: '500', CONSUMER_CONCURRENCY: '100' } as const;
export const TUNED_BATCH = Number(TUNED.BATCH_SIZE);
/** --only main,consumer-js,…: a subset of scenario ids (checked against the scenarios in run.ts). */
export const ONLY: ReadonlySet<string> | undefined = (() => {
  const i = argv.indexOf('--only');
  return i >= 0 && argv[i + 1] ? new Set(argv[i + 1]!.split(',')) : undefined;
})();

if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || !Number.isInteger(JOBS) || JOBS < 100 || JOBS > 1_000_000) {
  throw new Error('--rounds must be ≥ 1 and --jobs between 100 and 1,000,000');
}

/** Whether a scenario runs: named by --only, else the quick set (main) or everything. */
export const wants = (scenario: { id: string; quick: boolean }): boolean =>
  ONLY ? ONLY.has(scenario.id) : scenario.quick || !QUICK;
