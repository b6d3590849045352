// The surface of the entry files (functions/*.ts) and the platform: they import only this module.
export {
  type ConsumerObserver,
  type ConsumerSettings,
  type ConsumerSummary,
  type EngineLogger,
  runConsumer,
} from './consumer.ts';
export { DB_OPERATIONS, type DbOperation, RUN_OUTCOMES, type RunOutcome } from './contracts.ts';
export {
  DEFAULT_MAX_ATTEMPTS,
  type EnqueueRequest,
  type EnqueueResult,
  enqueue,
  enqueueMany,
  LIMITS,
  normalizeRequest,
} from './enqueue.ts';
export * from './errors.ts';
export { fanoutCount, fanoutPayload, settledCounts, wantsSuccessor } from './fanout.ts';
export { type LedgerInput, readLedger, STUCK_LEASE_MULTIPLE } from './ledger.ts';
export {
  checksum,
  destructiveStatements,
  hasDestructiveMarker,
  loadMigrations,
  type MigrateResult,
  type MigrationFile,
  migrate,
  migrationStatus,
} from './migrator.ts';
// The operator tools' surface (taskctl, the dashboard): actions, the request schema, the reads they show.
export * from './operator.ts';
export { checkRoleMigration, type RoleRights, readRoleRights, roleGrantProblem } from './preflight.ts';
export type { Db, Queryable, QueryResult } from './queryable.ts';
export { type QueueRow, queueRows } from './queueRows.ts';
export { type ReaperSummary, runReaper } from './reaper.ts';
export {
  type CatchUp,
  deleteSchedule,
  getSchedule,
  listSchedules,
  putSchedule,
  type Schedule,
  type ScheduleDefinition,
  setScheduleEnabled,
  syncCodeSchedules,
} from './schedules.ts';
export * from './schema.ts';
export { type AuditRecord, listAudit } from './sql/audit.ts';
export { cancelJob } from './sql/cancelJob.ts';
export { type ClaimOptions, claimJobs } from './sql/claimJobs.ts';
export { completeAndClaim } from './sql/completeAndClaim.ts';
export { type Completion, completeJobs } from './sql/completeJobs.ts';
export { readCounterHistory } from './sql/counterHistory.ts';
export {
  type CounterTotals,
  compactCounters,
  type QueueGauge,
  readCounters,
  type Snapshot,
} from './sql/counters.ts';
export { findJobsByIdempotencyKeys } from './sql/enqueueJobs.ts';
export { type FailedFilter, type FailedJob, findFailedJobs } from './sql/failedJobs.ts';
export { type FailOutcome, type Failure, failJob } from './sql/failJob.ts';
export { getJob } from './sql/getJob.ts';
export { countJobsByQueue, failureRatio } from './sql/jobStats.ts';
export { listJobs } from './sql/listJobs.ts';
export { ensureFinishedPartitions, pruneFinished } from './sql/pruneFinished.ts';
export { listQueueLimits, type QueueLimits } from './sql/queueLimits.ts';
export {
  listQueueRetention,
  QUEUE_RETENTIONS,
  type QueueRetention,
  type QueueRetentionSetting,
  validateRetention,
} from './sql/queueRetention.ts';
export { listQueueControls, pauseQueue, type QueueControl, resumeQueue } from './sql/queues.ts';
export { releaseJobs } from './sql/releaseJobs.ts';
export { renewLeases } from './sql/renewLeases.ts';
export { type RecoveryResult, requeueExpiredLeases } from './sql/requeueExpiredLeases.ts';
export type { Requeued, RequeueTarget } from './sql/requeueJobs.ts';
export { readRunningAges } from './sql/runningAges.ts';
export { findStuckJobs, type StuckFilter, type StuckJob } from './sql/stuckJobs.ts';
export * from './types.ts';
export { configuredWaker, createWaker, type Invoker, type WakeOutcome } from './wake.ts';
