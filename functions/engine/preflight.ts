/** The migrate function's preflight: would the role migration (0004) fail as the connected user? */
import { MigrationError } from './errors.ts';
import { type MigrationFile, migrationStatus } from './migrator.ts';
import type { Db } from './queryable.ts';

/** What the connected user may do with roles, read before any migration is applied. */
export interface RoleRights {
  /** rds_iam exists: this is RDS, and 0004 creates the IAM login users. */
  rdsIam: boolean;
  superuser: boolean;
  createRole: boolean;
  /** The user holds ADMIN OPTION on rds_iam (directly or through rds_superuser). */
  adminOnRdsIam: boolean;
  /** server_version_num: 160000 and later need ADMIN OPTION to grant a role, CREATEROLE no longer suffices. */
  serverVersion: number;
  user: string;
}

/**
 * Why 0004 would fail as this user, or undefined when it can run. 0004 creates NOLOGIN roles
 * and, on RDS, login users `IN ROLE dte_x, rds_iam`: that needs CREATEROLE, and from PostgreSQL
 * 16 on also ADMIN OPTION on rds_iam. Checked here rather than in 0004, whose text is
 * checksummed and already shipped.
 */
export function roleGrantProblem(r: RoleRights): string | undefined {
  if (r.superuser) return undefined;
  const missing: string[] = [];
  if (!r.createRole) missing.push('CREATEROLE');
  if (r.rdsIam && r.serverVersion >= 160000 && !r.adminOnRdsIam) missing.push('ADMIN OPTION on rds_iam');
  if (missing.length === 0) return undefined;
  return (
    `migration 0004_roles.sql cannot run as ${r.user}: it lacks ${missing.join(' and ')} ` +
    `(needed to create the least-privilege roles${r.rdsIam ? ' and to grant rds_iam to their login users' : ''}). ` +
    'Run migrate as the RDS master user (a member of rds_superuser), or GRANT the missing right to this user; nothing was applied.'
  );
}

export async function readRoleRights(db: Db): Promise<RoleRights> {
  const { rows } = await db.query<RoleRights>(
    `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') AS "rdsIam",
            r.rolsuper AS superuser,
            r.rolcreaterole AS "createRole",
            CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam')
                 THEN pg_has_role(current_user, 'rds_iam', 'MEMBER WITH ADMIN OPTION')
                 ELSE false END AS "adminOnRdsIam",
            current_setting('server_version_num')::int AS "serverVersion",
            current_user::text AS "user"
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  return rows[0]!;
}

/** Fails before anything is applied when a pending 0004 could not create and grant its roles. */
export async function checkRoleMigration(db: Db, files: MigrationFile[]): Promise<void> {
  const roles = files.find((f) => f.version === 4);
  if (!roles) return;
  const status = await migrationStatus(db, [roles]);
  if (status[0]!.applied) return;
  const problem = roleGrantProblem(await readRoleRights(db));
  if (problem) throw new MigrationError(problem, { details: { file: roles.file } });
}
