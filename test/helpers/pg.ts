import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadMigrations, migrate } from '../../functions/engine/index.ts';
import { createDb, type DbOptions, type PgDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';

export const DATABASE_URL =
  process.env.DATABASE_URL ?? process.env.DATABASE_DSN ?? 'postgres://root@127.0.0.1:5432/test';

let available: boolean | undefined;

/**
 * True when the test database answers. With REQUIRE_POSTGRES=1 (CI) an unreachable database
 * throws instead, so Postgres suites can never be skipped there.
 */
export async function postgresAvailable(): Promise<boolean> {
  if (available !== undefined) return available;
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    available = true;
  } catch (err) {
    if (process.env.REQUIRE_POSTGRES === '1') {
      throw new Error(
        `REQUIRE_POSTGRES=1 but PostgreSQL at ${DATABASE_URL} is unreachable: ${(err as Error).message}`,
      );
    }
    console.warn(`skipping PostgreSQL suites: ${DATABASE_URL} unreachable (${(err as Error).message})`);
    available = false;
  } finally {
    await client.end().catch(() => {});
  }
  return available;
}

export interface TestSchema {
  schema: string;
  db: PgDb;
  /** A further pool on the same schema (e.g. one per simulated consumer). */
  connect(options?: Partial<DbOptions>): PgDb;
  /** A connection string that lands in this schema (for child processes). */
  url: string;
  drop(): Promise<void>;
}

/** A fresh schema with every migration applied: each test file gets its own, so files run in parallel. */
export async function createTestSchema(prefix = 't', options: Partial<DbOptions> = {}): Promise<TestSchema> {
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const pools: PgDb[] = [];
  const connect = (extra: Partial<DbOptions> = {}) => {
    const db = createDb({ connectionString: DATABASE_URL, searchPath: schema, max: 4, ...options, ...extra });
    pools.push(db);
    return db;
  };
  const db = connect();
  await migrate(db, loadMigrations(migrationsDir()));
  const url = new URL(DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    schema,
    db,
    connect,
    url: url.toString(),
    async drop() {
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}
