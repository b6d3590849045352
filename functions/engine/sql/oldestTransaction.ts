import type { Queryable } from '../queryable.ts';

/**
 * The oldest transaction in this database that holds back the snapshot horizon, as this
 * session can see it. While one is open, vacuum keeps every dead row version it could still
 * see, and the claim and the reaper's scan walk every job claimed since it began
 * (docs/RELIABILITY.md finding 6).
 */
export interface OldestTransaction {
  /** Seconds since that transaction began; 0 when none is open (besides the reader's own). */
  ageSeconds: number;
  /**
   * Whether the reading role sees other roles' sessions (superuser, or a member of
   * pg_read_all_stats / pg_monitor). Without it pg_stat_activity hides their xact_start and
   * backend_xmin, and ageSeconds covers only the reader's own role (docs/DEPLOY.md).
   */
  seesAllRoles: boolean;
}

/**
 * One statement over pg_stat_activity: client sessions of this database (autovacuum's own
 * snapshot holds back no other vacuum) with a snapshot (backend_xmin) or a transaction id
 * (backend_xid: a writer holds the horizon too), the reader excluded.
 */
export async function readOldestTransaction(db: Queryable): Promise<OldestTransaction> {
  const { rows } = await db.query<{ age: number; all_roles: boolean }>(
    `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - a.xact_start)), 0)::float8 AS age,
            pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS all_roles
       FROM pg_stat_activity a
      WHERE a.datname = current_database()
        AND a.backend_type = 'client backend'
        AND a.pid <> pg_backend_pid()
        AND a.xact_start IS NOT NULL
        AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)`,
  );
  return { ageSeconds: Math.max(0, rows[0]?.age ?? 0), seesAllRoles: rows[0]?.all_roles === true };
}
