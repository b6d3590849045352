import { claimJobs, pausedQueues } from '../sql/claimJobs.ts';
import { completeAndClaim } from '../sql/completeAndClaim.ts';
import { completeJobs } from '../sql/completeJobs.ts';
import { failJob } from '../sql/failJob.ts';
import { releaseJobs } from '../sql/releaseJobs.ts';
import { renewLeases } from '../sql/renewLeases.ts';
import { leavePresence, nextDueAt, touchPresence } from '../wake.ts';

/**
 * The statements the consumer runs, as one object so that its parts can be tested without a
 * database (the unit tests pass fakes). The default is the engine's SQL.
 */
export const SQL_STATEMENTS = {
  claimJobs,
  pausedQueues,
  completeAndClaim,
  completeJobs,
  failJob,
  releaseJobs,
  renewLeases,
  touchPresence,
  leavePresence,
  nextDueAt,
};
export type Statements = typeof SQL_STATEMENTS;
