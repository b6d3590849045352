import { describe, expect, it } from 'vitest';
import { type RoleRights, roleGrantProblem } from '../../functions/migrate.ts';

const rdsMaster: RoleRights = {
  rdsIam: true,
  superuser: false,
  createRole: true,
  adminOnRdsIam: true,
  serverVersion: 170009,
  user: 'dte_owner',
};

describe('migrate checks before 0004 whether the owner may create roles and grant rds_iam', () => {
  it('lets the RDS master user (CREATEROLE, ADMIN OPTION on rds_iam through rds_superuser) run 0004', () => {
    expect(roleGrantProblem(rdsMaster)).toBeUndefined();
    expect(
      roleGrantProblem({ ...rdsMaster, createRole: false, adminOnRdsIam: false, superuser: true }),
    ).toBeUndefined();
  });

  it('refuses from PostgreSQL 16 on without ADMIN OPTION on rds_iam, where CREATEROLE alone no longer grants it', () => {
    expect(roleGrantProblem({ ...rdsMaster, adminOnRdsIam: false })).toMatch(
      /0004_roles\.sql cannot run as dte_owner: it lacks ADMIN OPTION on rds_iam/,
    );
    expect(roleGrantProblem({ ...rdsMaster, adminOnRdsIam: false, serverVersion: 150020 })).toBeUndefined();
  });

  it('refuses without CREATEROLE, and outside RDS asks for CREATEROLE only', () => {
    expect(roleGrantProblem({ ...rdsMaster, createRole: false })).toMatch(/lacks CREATEROLE \(needed/);
    const plain = { ...rdsMaster, rdsIam: false, adminOnRdsIam: false, createRole: false };
    expect(roleGrantProblem(plain)).toMatch(
      /lacks CREATEROLE \(needed to create the least-privilege roles\)/,
    );
    expect(roleGrantProblem({ ...plain, createRole: true })).toBeUndefined();
  });
});
