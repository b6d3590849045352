/**
 * Who is asking, and whether they may see only the jobs they created (JOBS_VISIBLE_TO=creator).
 * The caller is what API Gateway's authorizer verified: the JWT `sub`, or the IAM caller's ARN;
 * null when there is no authorizer (taskctl, the local engine). With `creatorOnly`, a job is
 * visible to a caller only when its `created_by` equals the caller, and every other job reads as
 * missing, so ids of other callers' jobs are never confirmed; a caller without an identity sees
 * none.
 */
export interface Viewer {
  caller: string | null;
  creatorOnly: boolean;
}

export type JobsVisibleTo = 'creator' | 'all';

/** Everything, as the owner's tools see it. */
export const ANYONE: Viewer = { caller: null, creatorOnly: false };

/** The longest caller the jobs table stores (jobs_created_by_check, migration 0009). */
export const MAX_CALLER_LENGTH = 2048;

/**
 * The verified caller of an API Gateway (HTTP API, payload v2) request: the IAM caller's ARN
 * (requestContext.authorizer.iam.userArn) or the JWT `sub`
 * (requestContext.authorizer.jwt.claims.sub); null without either.
 */
export function callerOf(requestContext: unknown): string | null {
  const authorizer = (requestContext as { authorizer?: unknown } | undefined)?.authorizer as
    | { iam?: { userArn?: unknown }; jwt?: { claims?: { sub?: unknown } } }
    | undefined;
  const caller = authorizer?.iam?.userArn ?? authorizer?.jwt?.claims?.sub;
  if (typeof caller !== 'string' || caller.length === 0 || caller.length > MAX_CALLER_LENGTH) return null;
  return caller;
}

/** Whether `viewer` may see a job created by `createdBy`. */
export function canSee(viewer: Viewer, createdBy: string | null): boolean {
  return !viewer.creatorOnly || (viewer.caller !== null && createdBy === viewer.caller);
}

/**
 * Whether an idempotency conflict may name the job holding the key: only to the caller that
 * created it (two callers without identity count as one, as before identities were recorded).
 */
export function mayName(viewer: Viewer, createdBy: string | null): boolean {
  return canSee(viewer, createdBy) && (createdBy ?? null) === viewer.caller;
}

export function viewerOf(requestContext: unknown, visibleTo: JobsVisibleTo = 'all'): Viewer {
  return { caller: callerOf(requestContext), creatorOnly: visibleTo === 'creator' };
}
