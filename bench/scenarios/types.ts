/** A scenario of `npm run bench`: its id is what --only takes and docs/BENCHMARKS.md names. */
export interface Scenario {
  id: string;
  /** Runs in --quick (only the main scenario does). */
  quick: boolean;
  /** The line printed before it runs. */
  intro?: string;
  run(): Promise<void>;
}
