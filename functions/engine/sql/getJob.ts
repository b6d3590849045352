import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';

export async function getJob(db: Queryable, id: string): Promise<JobRow | null> {
  const { rows } = await db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`, [id]);
  return rows[0] ?? null;
}
