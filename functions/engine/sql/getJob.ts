import { ANYONE, type Viewer } from '../access.ts';
import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';

/**
 * One job by id; null when missing. With a creator-only `viewer`, a job someone else created
 * (or any job, for a caller without identity) is null too: missing and hidden look the same.
 */
export async function getJob(db: Queryable, id: string, viewer: Viewer = ANYONE): Promise<JobRow | null> {
  const { rows } = viewer.creatorOnly
    ? await db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1 AND created_by = $2`, [
        id,
        viewer.caller,
      ])
    : await db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`, [id]);
  return rows[0] ?? null;
}
