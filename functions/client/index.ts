/**
 * `durable-task-engine/client`: what an application needs to enqueue jobs, either through the
 * HTTP API (SigV4, JWT or none; safe retries) or in its own PostgreSQL transaction. It imports
 * neither CDK nor PGlite nor middy: only zod, @smithy/signature-v4 and, when it signs without
 * explicit credentials, @aws-sdk/credential-provider-node.
 */
export {
  ApiError,
  AuthError,
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
  ValidationError,
  WaitTimeoutError,
} from './errors.ts';
export {
  type Auth,
  type CallOptions,
  type ClientOptions,
  createClient,
  type FetchLike,
  type QueuesClient,
  type SchedulesClient,
  type TaskEngineClient,
  type WaitOptions,
} from './http-client.ts';
export { RETRY_DEFAULTS, type RetryOptions } from './retry.ts';
export type { Credentials, CredentialsProvider } from './sigv4.ts';
export {
  type EnqueueResult,
  enqueue,
  enqueueMany,
  type RegistryLike,
  type SqlClient,
  type TransactionalOptions,
} from './transactional.ts';
export {
  type CatchUp,
  type JobOptions,
  type JobRequest,
  type JobView,
  job,
  type PayloadOf,
  type QueueLimitChange,
  type QueueLimits,
  type QueueRetention,
  type ScheduleDefinition,
  type ScheduleView,
  type TaskLike,
  type TypedJobRequest,
  type TypedScheduleDefinition,
} from './types.ts';
