import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../functions/platform/config.ts';
import { connectFromConfig } from '../../functions/platform/db-connect.ts';
import { DATABASE_URL, postgresAvailable } from '../helpers/pg.ts';

const url = new URL(DATABASE_URL);
const secret = (username: string) => ({
  SecretString: JSON.stringify({
    host: url.hostname,
    port: Number(url.port || 5432),
    username,
    password: 'from-secrets-manager',
    dbname: url.pathname.slice(1),
    engine: 'postgres',
  }),
});
/** Exactly what RDS writes into the secret it manages (manageMasterUserPassword): nothing else. */
const rdsManagedSecret = (username: string) => ({
  SecretString: JSON.stringify({ username, password: 'from-secrets-manager' }),
});
const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dte-db-AbCdEf';

describe.runIf(await postgresAvailable())('database credentials from Secrets Manager', () => {
  const sm = mockClient(SecretsManagerClient);
  afterEach(() => sm.reset());

  it('reads the secret once per container and reuses it across invocations', async () => {
    sm.on(GetSecretValueCommand).resolves(secret(url.username || 'root'));
    // DB_SSL stays off: the local server has no TLS; the secret path always verifies in AWS.
    const config = loadConfig({ DB_SECRET_ARN: ARN });
    const db = connectFromConfig(config, {
      applicationName: 'test',
      secretsManager: new SecretsManagerClient({ region: 'us-east-1' }),
      tls: false,
    });
    try {
      for (let i = 0; i < 3; i++)
        expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
      expect(sm.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({ SecretId: ARN });
    } finally {
      await db.end();
    }
  });

  it('connects with the RDS-managed secret ({username, password} only): where comes from DB_HOST/DB_PORT/DB_NAME', async () => {
    sm.on(GetSecretValueCommand).resolves(rdsManagedSecret(url.username || 'root'));
    // The environment the stack gives the migrate function.
    const config = loadConfig({
      DB_SECRET_ARN: ARN,
      DB_HOST: url.hostname,
      DB_PORT: url.port || '5432',
      DB_NAME: url.pathname.slice(1),
    });
    const db = connectFromConfig(config, {
      applicationName: 'test',
      secretsManager: new SecretsManagerClient({ region: 'us-east-1' }),
      tls: false,
    });
    try {
      const { rows } = await db.query<{ db: string }>('SELECT current_database() AS db');
      expect(rows[0]!.db).toBe(url.pathname.slice(1));
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    } finally {
      await db.end();
    }
  });

  it('refuses, naming DB_HOST, when neither the environment nor the secret says where the database is', async () => {
    sm.on(GetSecretValueCommand).resolves(rdsManagedSecret('root'));
    const db = connectFromConfig(loadConfig({ DB_SECRET_ARN: ARN }), {
      applicationName: 'test',
      secretsManager: new SecretsManagerClient({ region: 'us-east-1' }),
      tls: false,
    });
    await expect(db.query('SELECT 1')).rejects.toThrow(/holds no host; set DB_HOST/);
    await db.end();
  });

  it('re-reads the secret once when the database rejects the login (rotation), then succeeds', async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce(secret('dte_rotated_away_user'))
      .resolves(secret(url.username || 'root'));
    const config = loadConfig({ DB_SECRET_ARN: ARN });
    const db = connectFromConfig(config, {
      applicationName: 'test',
      secretsManager: new SecretsManagerClient({ region: 'us-east-1' }),
      tls: false,
    });
    try {
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
      await db.query('SELECT 1');
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    } finally {
      await db.end();
    }
  });

  it('gives up after one re-read when the new secret is rejected too', async () => {
    sm.on(GetSecretValueCommand).resolves(secret('dte_no_such_user'));
    const db = connectFromConfig(loadConfig({ DB_SECRET_ARN: ARN }), {
      applicationName: 'test',
      secretsManager: new SecretsManagerClient({ region: 'us-east-1' }),
      tls: false,
    });
    try {
      // A rejected login is reported as the database being unavailable (503 at the api), SQLSTATE kept.
      await expect(db.query('SELECT 1')).rejects.toMatchObject({
        code: 'database_unavailable',
        sqlState: '28000',
      });
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    } finally {
      await db.end();
    }
  });

  it('asks the RDS signer for a fresh IAM token for each new connection', async () => {
    // pg calls a function password once per new connection that the server asks a password of;
    // the local server trusts loopback and never asks, so the wiring is checked on the pool.
    const tokens: string[] = [];
    const config = loadConfig({
      DB_IAM_AUTH: '1',
      DB_HOST: url.hostname,
      DB_USER: url.username || 'root',
      DB_NAME: url.pathname.slice(1),
    });
    const db = connectFromConfig(config, {
      applicationName: 'test',
      tls: false,
      signer: async (host, port, user) => {
        tokens.push(`token-${tokens.length}-${host}:${port}/${user}`);
        return tokens.at(-1)!;
      },
    });
    try {
      await db.query('SELECT 1');
      const password = (db.ready()!.pool as unknown as { options: { password: unknown } }).options.password;
      expect(typeof password).toBe('function');
      const first = await (password as () => Promise<string>)();
      const second = await (password as () => Promise<string>)();
      expect(first).not.toBe(second);
      expect(first).toBe(`token-0-${url.hostname}:5432/${url.username || 'root'}`);
    } finally {
      await db.end();
    }
  });
});
