import { describe, expect, it } from 'vitest';
import { createHandler as createApi } from '../../functions/api.ts';
import { createHandler as createConsumer } from '../../functions/consumer.ts';
import { createHandler as createMigrate } from '../../functions/migrate.ts';
import { ConfigError, databaseMode, loadConfig } from '../../functions/platform/config.ts';
import { connectFromConfig } from '../../functions/platform/db-connect.ts';
import { createHandler as createReaper } from '../../functions/reaper.ts';

const handlers = {
  api: createApi,
  consumer: createConsumer,
  reaper: createReaper,
  migrate: createMigrate,
} as const;

/** The ConfigError a cold start throws, or undefined when it builds. */
function coldStart(create: (o: { env: Record<string, string> }) => unknown, env: Record<string, string>) {
  try {
    create({ env: { LOG_LEVEL: 'silent', ...env } });
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
}

const badModes: Array<[string, Record<string, string>, string[]]> = [
  ['DB_IAM_AUTH=1 without DB_HOST', { DB_IAM_AUTH: '1', DB_USER: 'dte_api_login' }, ['DB_HOST']],
  ['DB_IAM_AUTH=1 without DB_USER', { DB_IAM_AUTH: '1', DB_HOST: 'db.example' }, ['DB_USER']],
  ['DB_IAM_AUTH=1 with neither', { DB_IAM_AUTH: '1' }, ['DB_HOST', 'DB_USER']],
  ['a DB_SECRET_ARN that is no ARN', { DB_SECRET_ARN: 'owner-secret' }, ['DB_SECRET_ARN']],
  [
    'a CONSUMER_FUNCTION_NAME that is no function name',
    { CONSUMER_FUNCTION_NAME: 'my consumer' },
    ['CONSUMER_FUNCTION_NAME'],
  ],
];

describe('configuration is validated at cold start (createHandler), naming the variable', () => {
  for (const [name, create] of Object.entries(handlers)) {
    for (const [what, env, variables] of badModes) {
      it(`${name}: ${what} fails at createHandler, naming ${variables.join(' and ')}`, () => {
        const err = coldStart(create, env);
        expect(err?.variables).toEqual(variables);
        for (const v of variables) expect(err?.message).toMatch(new RegExp(`\\b${v}\\b`));
      });
    }
    it(`${name}: each complete credential mode builds without connecting`, () => {
      expect(coldStart(create, { DATABASE_URL: 'postgres://127.0.0.1:1/none' })).toBeUndefined();
      expect(coldStart(create, { DB_IAM_AUTH: '1', DB_HOST: 'db.example', DB_USER: 'u' })).toBeUndefined();
      expect(
        coldStart(create, { DB_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' }),
      ).toBeUndefined();
      // A URL wins over the other modes, as connectFromConfig honours it.
      expect(
        coldStart(create, { DATABASE_URL: 'postgres://127.0.0.1:1/none', DB_IAM_AUTH: '1' }),
      ).toBeUndefined();
    });
  }
});

describe('databaseMode', () => {
  it('picks URL, then secret, then IAM, and says none when nothing is set', () => {
    expect(databaseMode(loadConfig({ DATABASE_DSN: 'postgres://h/d', DB_SECRET_ARN: 'arn:x' }))).toEqual({
      kind: 'url',
      url: 'postgres://h/d',
    });
    expect(databaseMode(loadConfig({ DB_SECRET_ARN: 'arn:x', DB_IAM_AUTH: '1' }))).toEqual({
      kind: 'secret',
      arn: 'arn:x',
      host: undefined,
    });
    expect(databaseMode(loadConfig({ DB_IAM_AUTH: '1', DB_HOST: 'h', DB_USER: 'u' }))).toEqual({
      kind: 'iam',
      host: 'h',
      user: 'u',
    });
    expect(databaseMode(loadConfig({}))).toEqual({ kind: 'none' });
  });

  it('refuses, when asked, no database at all and a secret without DB_HOST', () => {
    expect(() => databaseMode(loadConfig({}), { required: true })).toThrow(/no database configured/);
    expect(() => databaseMode(loadConfig({ DB_SECRET_ARN: 'arn:x' }), { secretWithoutHost: true })).toThrow(
      /DB_HOST: is required with DB_SECRET_ARN/,
    );
  });

  it('a Config that lacks the IAM host (built by hand, past loadConfig) still fails at connectFromConfig', () => {
    const config = { ...loadConfig({ DB_IAM_AUTH: '1', DB_HOST: 'h', DB_USER: 'u' }), DB_HOST: undefined };
    expect(() => connectFromConfig(config, { applicationName: 't' })).toThrow(
      /DB_HOST: required with DB_IAM_AUTH=1/,
    );
  });

  it('with no database configured, a handler still builds, and its first query names the variables', async () => {
    const db = connectFromConfig(loadConfig({}), { applicationName: 't' });
    await expect(db.query('SELECT 1')).rejects.toThrow(/no database configured: set DATABASE_URL/);
  });
});
