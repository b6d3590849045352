// The AWS SDK clients are imported when first needed: a container that connects with
// DATABASE_URL never loads them (they were ~20 MB of a consumer's resident memory).
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Db, Queryable, QueryResult } from '../engine/index.ts';
import { type Config, ConfigError, databaseMode, NO_DATABASE } from './config.ts';
import { createDb, isAuthFailure, type PgDb } from './db.ts';

/**
 * The JSON in a database secret. The secret RDS creates itself (manageMasterUserPassword) holds
 * only `username` and `password`; where the database is comes from the function's environment
 * (DB_HOST, DB_PORT, DB_NAME, set by the stack). The other fields are used only when present
 * (secrets made by CDK's DatabaseSecret or by hand, and by rotation functions, carry them).
 */
export interface RdsSecret {
  host?: string;
  port?: number;
  username: string;
  password: string;
  dbname?: string;
}

export interface ConnectOptions {
  applicationName: string;
  /** One connection per Lambda container: a container runs one invocation at a time. */
  max?: number;
  secretsManager?: SecretsManagerClient;
  signer?: (host: string, port: number, user: string) => Promise<string>;
  /**
   * Secret and IAM connections always use verified TLS (RDS enforces rds.force_ssl). `false`
   * exists for the test suite, whose local server speaks no TLS.
   */
  tls?: boolean;
}

/**
 * Reads the RDS secret once per container and again only when the database rejects the
 * password (the secret was rotated). Concurrent callers share one request.
 */
export class SecretCache {
  #value: Promise<RdsSecret> | undefined;
  readonly #client: SecretsManagerClient;
  readonly #arn: string;
  constructor(arn: string, client: SecretsManagerClient) {
    this.#arn = arn;
    this.#client = client;
  }
  get(): Promise<RdsSecret> {
    this.#value ??= import('@aws-sdk/client-secrets-manager')
      .then(({ GetSecretValueCommand }) =>
        this.#client.send(new GetSecretValueCommand({ SecretId: this.#arn })),
      )
      .then((out) => {
        if (!out.SecretString) throw new Error(`secret ${this.#arn} has no SecretString`);
        const parsed = JSON.parse(out.SecretString) as Partial<RdsSecret> | null;
        if (typeof parsed?.username !== 'string' || typeof parsed.password !== 'string' || !parsed.username)
          throw new Error(`secret ${this.#arn} lacks username/password`);
        return parsed as RdsSecret;
      });
    this.#value.catch(() => {
      this.#value = undefined;
    });
    return this.#value;
  }
  invalidate(): void {
    this.#value = undefined;
  }
}

/** TLS that verifies the server (RDS CA from NODE_EXTRA_CA_CERTS); never `rejectUnauthorized: false`. */
const VERIFIED_TLS = { rejectUnauthorized: true } as const;

/**
 * A Db whose pool is built on first use (no connection at import or cold start), from
 * DATABASE_URL, a Secrets Manager secret, or RDS IAM tokens.
 */
export function connectFromConfig(
  config: Config,
  options: ConnectOptions,
): Db & { readonly ready: () => PgDb | undefined } {
  const common = {
    applicationName: options.applicationName,
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    max: options.max ?? config.DB_POOL_MAX,
  };
  const tls = options.tls === false ? undefined : VERIFIED_TLS;
  // Decided at cold start: a credential mode that lacks a variable fails here, naming it.
  const mode = databaseMode(config);
  let pool: PgDb | undefined;
  let secrets: SecretCache | undefined;

  const fromSecret = async (arn: string): Promise<PgDb> => {
    secrets ??= new SecretCache(
      arn,
      options.secretsManager ??
        new (await import('@aws-sdk/client-secrets-manager')).SecretsManagerClient({}),
    );
    const s = await secrets.get();
    const host = config.DB_HOST ?? s.host;
    if (!host) throw new ConfigError('DB_SECRET_ARN: the secret holds no host; set DB_HOST', ['DB_HOST']);
    return createDb({
      ...common,
      host,
      port: config.DB_HOST ? config.DB_PORT : (s.port ?? config.DB_PORT),
      database: config.DB_NAME ?? s.dbname ?? 'postgres',
      user: config.DB_USER ?? s.username,
      password: s.password,
      ssl: tls,
    });
  };

  const fromIam = (host: string, user: string): PgDb => {
    const port = config.DB_PORT;
    const sign =
      options.signer ??
      ((h: string, p: number, u: string) =>
        import('@aws-sdk/rds-signer').then(({ Signer }) =>
          new Signer({ hostname: h, port: p, username: u }).getAuthToken(),
        ));
    // A fresh token per new connection: tokens live 15 minutes, connections may live longer.
    return createDb({
      ...common,
      host,
      port,
      user,
      database: config.DB_NAME ?? 'postgres',
      password: () => sign(host, port, user),
      ssl: tls,
    });
  };

  const build = async (): Promise<PgDb> => {
    if (pool) return pool;
    if (mode.kind === 'url')
      pool = createDb({
        ...common,
        connectionString: mode.url,
        ssl: config.DB_SSL ? VERIFIED_TLS : undefined,
      });
    else if (mode.kind === 'secret') pool = await fromSecret(mode.arn);
    else if (mode.kind === 'iam') pool = fromIam(mode.host, mode.user);
    else throw new ConfigError(NO_DATABASE, ['DATABASE_URL', 'DB_SECRET_ARN', 'DB_IAM_AUTH']);
    return pool;
  };

  /**
   * On a rejected login, re-read the secret once, rebuild the pool from it and retry: rotation
   * may change the password or, with alternating-users rotation, the user.
   */
  const withAuthRetry = async <T>(fn: (db: PgDb) => Promise<T>): Promise<T> => {
    const db = await build();
    try {
      return await fn(db);
    } catch (err) {
      if (!secrets || !isAuthFailure(err)) throw err;
      secrets.invalidate();
      if (pool === db) {
        pool = undefined;
        await db.end().catch(() => {});
      }
      return fn(await build());
    }
  };

  return {
    ready: () => pool,
    query: <R>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> =>
      withAuthRetry((db) => db.query<R>(text, values)),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> =>
      withAuthRetry((db) => db.transaction(fn)),
    end: async () => {
      await pool?.end();
      pool = undefined;
    },
  };
}
