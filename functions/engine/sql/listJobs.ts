import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow, type JobStatus } from '../types.ts';

export interface ListJobsFilter {
  status?: JobStatus | undefined;
  queue?: string | undefined;
  type?: string | undefined;
  /** Keyset cursor: only ids below this one (the previous page's last id). */
  before?: string | undefined;
  limit: number;
}

/**
 * Newest first, paged by id (keyset, not OFFSET): each page walks the primary key backwards
 * from the cursor, so page 100 costs what page 1 costs and rows inserted meanwhile never shift it.
 */
export async function listJobs(db: Queryable, f: ListJobsFilter): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs
     WHERE ($1::text IS NULL OR status = $1)
       AND ($2::text IS NULL OR queue = $2)
       AND ($3::text IS NULL OR task_type = $3)
       AND ($4::bigint IS NULL OR id < $4)
     ORDER BY id DESC
     LIMIT $5`,
    [f.status ?? null, f.queue ?? null, f.type ?? null, f.before ?? null, f.limit],
  );
  return rows;
}
