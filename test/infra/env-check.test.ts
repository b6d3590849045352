import { App, Token } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../infra/config.ts';
import { checkFunctionEnvironment, FunctionEnvironmentError } from '../../infra/env-check.ts';
import { TaskEngineStack } from '../../infra/task-engine-stack.ts';

/** Builds the stack without bundling: the environment check runs as each function is defined. */
function construct(name: string, settings: object = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return new TaskEngineStack(app, name, { settings });
}

function failure(fn: () => unknown): FunctionEnvironmentError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(FunctionEnvironmentError);
    return err as FunctionEnvironmentError;
  }
}

describe('each function environment passes the handlers own configuration check at synth', () => {
  it('the stack as configured passes (tokens stand in for deploy-time values)', () => {
    expect(() => construct('EnvCheckOk')).not.toThrow();
  });

  it('a setting the consumer would refuse at cold start fails synth, naming the function and the variable', () => {
    // validateSettings has no bound on batchSize; the consumer's BATCH_SIZE is 1..1000.
    const err = failure(() => construct('EnvCheckBatch', { batchSize: 5000 }));
    expect(err?.functionName).toBe('consumer');
    expect(err?.variables).toEqual(['BATCH_SIZE']);
    expect(err?.message).toMatch(/^function consumer: .*BATCH_SIZE/);
  });

  it('a lease the reaper and consumer would refuse fails synth at the first function that carries it', () => {
    expect(DEFAULT_SETTINGS.leaseSeconds).toBeLessThan(43_200);
    const err = failure(() => construct('EnvCheckLease', { leaseSeconds: 50_000 }));
    expect(err?.functionName).toBe('consumer');
    expect(err?.message).toMatch(/LEASE_SECONDS/);
  });
});

describe('checkFunctionEnvironment', () => {
  const iam = { DB_IAM_AUTH: '1', DB_HOST: Token.asString({ Ref: 'Endpoint' }), DB_USER: 'dte_api_login' };

  it('accepts deploy-time tokens where the value is only known at deploy', () => {
    expect(() =>
      checkFunctionEnvironment('api', { ...iam, PUSHGATEWAY_URL: Token.asString({ Ref: 'Url' }) }),
    ).not.toThrow();
    expect(() =>
      checkFunctionEnvironment('migrate', {
        DB_SECRET_ARN: Token.asString({ Ref: 'Secret' }),
        DB_HOST: Token.asString({ Ref: 'Host' }),
      }),
    ).not.toThrow();
  });

  const bad: Array<[string, Record<string, string>, string[]]> = [
    ['IAM without DB_HOST', { DB_IAM_AUTH: '1', DB_USER: 'u' }, ['DB_HOST']],
    ['the RDS-managed secret without DB_HOST', { DB_SECRET_ARN: Token.asString({ Ref: 'S' }) }, ['DB_HOST']],
    ['no database at all', { LOG_LEVEL: 'info' }, ['DATABASE_URL', 'DB_SECRET_ARN', 'DB_IAM_AUTH']],
    ['a misspelt variable', { ...iam, LEASE_SECOND: '30' }, ['LEASE_SECOND']],
    ['a value out of range', { ...iam, CONSUMER_FANOUT_MAX: '101' }, ['CONSUMER_FANOUT_MAX']],
    ['a number that is a token', { ...iam, BATCH_SIZE: Token.asString({ Ref: 'N' }) }, ['BATCH_SIZE']],
  ];
  for (const [what, env, variables] of bad) {
    it(`refuses ${what}, naming the function and ${variables.join(', ')}`, () => {
      const err = failure(() => checkFunctionEnvironment('reaper', env));
      expect(err?.variables).toEqual(variables);
      expect(err?.message).toMatch(/^function reaper: /);
      for (const v of variables) expect(err?.message).toContain(v);
    });
  }
});
