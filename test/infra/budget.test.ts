import { App } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import type * as rds from 'aws-cdk-lib/aws-rds';
import { describe, expect, it } from 'vitest';
import {
  connectionBudget,
  DEFAULT_SETTINGS,
  estimateMaxConnections,
  SettingsError,
  validateSettings,
} from '../../infra/config.ts';
import { TaskEngineStack } from '../../infra/task-engine-stack.ts';

/** Builds the stack without bundling or synthesis: enough to read resolved properties and annotations. */
function construct(name: string, settings: Parameters<typeof validateSettings>[0] | object = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return new TaskEngineStack(app, name, { settings: settings as object });
}

describe('connection budget (computed at synthesis)', () => {
  it('estimates max_connections from the instance class the way RDS sizes it, erring low', () => {
    expect(estimateMaxConnections('t4g.micro')).toBe(90);
    expect(estimateMaxConnections('t4g.small')).toBe(180);
    expect(estimateMaxConnections('m7g.large')).toBe(720);
    expect(estimateMaxConnections('r7g.large')).toBe(1441);
    expect(estimateMaxConnections('r7g.16xlarge')).toBe(5000);
    expect(estimateMaxConnections('z1d.large')).toBeUndefined();
  });

  it('fits the defaults: api + consumer + reaper + migrate + operators within max_connections less the reserved', () => {
    const b = connectionBudget(DEFAULT_SETTINGS);
    expect(b.demand).toEqual({ api: 50, consumer: 10, reaper: 1, migrate: 1, operators: 5 });
    expect(b.direct).toBe(67);
    expect(b.directCapacity).toBe(175);
    expect(b.errors).toEqual([]);
    expect(b.warnings).toEqual([]);
    // Lambda keeps 100 unreserved: 61 reserved needs a quota of 161.
    expect(b.reservedConcurrency).toBe(61);
    expect(b.accountQuotaNeeded).toBe(161);
  });

  it('refuses synthesis, naming the settings, when the functions could hold more connections than the instance has', () => {
    const tooMany = { ...DEFAULT_SETTINGS, apiMaxConcurrency: 170 };
    expect(connectionBudget(tooMany).errors[0]).toMatch(
      /api 170 \(apiMaxConcurrency\).*= 187 connections.*leaves 175/,
    );
    expect(() => validateSettings(tooMany)).toThrow(SettingsError);
    expect(() => construct('TooMany', { apiMaxConcurrency: 170 })).toThrow(/connection budget/);
    // A smaller instance refuses what the default one takes.
    expect(() => validateSettings({ ...DEFAULT_SETTINGS, instanceType: 't4g.micro' })).not.toThrow();
    expect(() =>
      validateSettings({ ...DEFAULT_SETTINGS, instanceType: 't4g.micro', apiMaxConcurrency: 80 }),
    ).toThrow(/connection budget/);
    // An explicit max_connections (a custom parameter group) overrides the estimate.
    expect(() => validateSettings({ ...DEFAULT_SETTINGS, maxConnections: 60 })).toThrow(
      /max_connections 60 less/,
    );
  });

  it('with RDS Proxy, checks what connects directly (migrate, operators) against what the proxy leaves', () => {
    const proxied = { ...DEFAULT_SETTINGS, rdsProxy: true, apiMaxConcurrency: 400 };
    const b = connectionBudget(proxied);
    expect(b.proxyPool).toBe(144);
    expect(b.direct).toBe(6);
    expect(b.errors).toEqual([]);
    expect(b.warnings[0]).toMatch(/more than the proxy's pool of 144/);
    expect(() => validateSettings({ ...proxied, operatorConnections: 40 })).toThrow(/connect directly/);
  });

  it('warns at synthesis when it fits but the connections alarm would fire, or the class is unknown', () => {
    const busy = construct('Busy', { apiMaxConcurrency: 150 });
    Annotations.fromStack(busy).hasWarning(
      '*',
      Match.stringLikeRegexp('above connectionsAlarmThreshold 150'),
    );
    const unknown = construct('Unknown', { instanceType: 'z1d.large' });
    Annotations.fromStack(unknown).hasWarning('*', Match.stringLikeRegexp('set taskEngine:maxConnections'));
    const defaults = construct('Defaults');
    Annotations.fromStack(defaults).hasNoWarning('*', Match.stringLikeRegexp('connection budget'));
    Annotations.fromStack(defaults).hasInfo('*', Match.stringLikeRegexp('quota must be at least 161'));
  });
});

describe('names unique per account and region', () => {
  it('derives the RDS Proxy name from the stack, so side-by-side stacks do not collide', () => {
    const names = ['TaskEngine', 'TaskEngineStaging'].map((n) => {
      const stack = construct(n, { rdsProxy: true });
      const cfn = stack.database.proxy!.node.defaultChild as rds.CfnDBProxy;
      return stack.resolve(cfn.dbProxyName) as string;
    });
    for (const name of names) expect(name).toMatch(/^[A-Za-z][A-Za-z0-9]{0,59}$/);
    expect(names[0]).not.toBe('Proxy');
    expect(names[0]).not.toBe(names[1]);
  });

  it('derives the ECR pull-through prefix from the stack as well', () => {
    const prefixes = ['TaskEngine', 'TaskEngineStaging'].map(
      (n) => construct(n).resolve(construct(n).pushgateway.cacheRule!.ecrRepositoryPrefix) as string,
    );
    expect(prefixes[0]).not.toBe(prefixes[1]);
  });

  it('warns when the Pushgateway image would come anonymously from Docker Hub', () => {
    const stack = construct('Hub', { pushgatewayImage: 'prom/pushgateway:v1.11.0' });
    expect(stack.pushgateway.cacheRule).toBeUndefined();
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('anonymously from Docker Hub'));
  });
});
