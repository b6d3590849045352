/**
 * The consumer: one invocation's loop (consumer/loop.ts) over its parts — the lease keeper
 * (held jobs, heartbeat, releases), the completion batcher, the job executor, the outcome
 * recorder, and presence and staying (wake on enqueue). Its contracts are in contracts.ts.
 */

export { DeadlineError, TaskTimeoutError } from './consumer/held.ts';
export { type ConsumerDeps, deadlineMargin, runConsumer } from './consumer/loop.ts';
export type {
  ConsumerObserver,
  ConsumerSettings,
  ConsumerSummary,
  DbOperation,
  EngineLogger,
  InvocationContext,
  RunnableTask,
  RunOutcome,
  TaskLookup,
} from './contracts.ts';
