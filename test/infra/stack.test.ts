import { rmSync } from 'node:fs';
import { Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../infra/config.ts';
import { API_ROUTES } from '../../infra/constructs/api.ts';
import { type Cfn, type Synthesized, synth } from './synth.ts';

type Resources = Synthesized['json']['Resources'];

const ofType = (resources: Resources, type: string) =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

/** Every ingress rule, inline or standalone, as "targetGroup <- source:port". */
function ingressRules(resources: Resources): string[] {
  const source = (rule: Cfn) =>
    rule.SourceSecurityGroupId?.['Fn::GetAtt']?.[0] ?? rule.CidrIp ?? rule.CidrIpv6 ?? JSON.stringify(rule);
  const rules: string[] = [];
  for (const [id, r] of ofType(resources, 'AWS::EC2::SecurityGroup'))
    for (const rule of r.Properties.SecurityGroupIngress ?? [])
      rules.push(`${id} <- ${source(rule)}:${rule.FromPort}`);
  for (const [, r] of ofType(resources, 'AWS::EC2::SecurityGroupIngress'))
    rules.push(
      `${r.Properties.GroupId['Fn::GetAtt'][0]} <- ${source(r.Properties)}:${r.Properties.FromPort}`,
    );
  return rules.sort();
}

describe('TaskEngineStack (default settings)', () => {
  let s: Synthesized;
  let R: Resources;
  let ids: {
    api: string;
    consumer: string;
    reaper: string;
    migrate: string;
    instance: string;
    dbSg: string;
    functionsSg: string;
    migrateSg: string;
    pushgatewaySg: string;
  };

  beforeAll(() => {
    s = synth();
    R = s.json.Resources;
    const id = (c: { node: { defaultChild?: unknown } }) =>
      s.stack.getLogicalId(c.node.defaultChild as never);
    ids = {
      api: id(s.stack.functions.api),
      consumer: id(s.stack.functions.consumer),
      reaper: id(s.stack.functions.reaper),
      migrate: id(s.stack.functions.migrate),
      instance: id(s.stack.database.instance),
      dbSg: s.stack.getLogicalId(s.stack.database.securityGroup.node.defaultChild as never),
      functionsSg: s.stack.getLogicalId(s.stack.network.functionsSg.node.defaultChild as never),
      migrateSg: s.stack.getLogicalId(s.stack.network.migrateSg.node.defaultChild as never),
      pushgatewaySg: s.stack.getLogicalId(s.stack.pushgateway.securityGroup.node.defaultChild as never),
    };
  });
  afterAll(() => {
    if (s) rmSync(s.outdir, { recursive: true, force: true });
  });

  it('synthesizes env-agnostic: no account or region is resolved and no lookup is recorded', () => {
    expect(s.stack.resolve(s.stack.account)).toEqual({ Ref: 'AWS::AccountId' });
    expect(s.stack.resolve(s.stack.region)).toEqual({ Ref: 'AWS::Region' });
    expect(s.app.node.tryGetContext('availability-zones:account=')).toBeUndefined();
  });

  it('keeps RDS PostgreSQL 17 private, encrypted, backed up for 7 days, protected and TLS-only', () => {
    s.template.hasResource('AWS::RDS::DBInstance', {
      DeletionPolicy: 'Snapshot',
      UpdateReplacePolicy: 'Snapshot',
      Properties: Match.objectLike({
        Engine: 'postgres',
        EngineVersion: '17.9',
        PubliclyAccessible: false,
        StorageEncrypted: true,
        BackupRetentionPeriod: Match.anyValue(),
        DeletionProtection: true,
        EnableIAMDatabaseAuthentication: true,
        ManageMasterUserPassword: true,
        MultiAZ: true,
      }),
    });
    const [, instance] = ofType(R, 'AWS::RDS::DBInstance')[0]!;
    expect(instance.Properties.BackupRetentionPeriod).toBeGreaterThanOrEqual(7);
    s.template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'postgres17',
      Parameters: Match.objectLike({
        'rds.force_ssl': '1',
        // docs/RELIABILITY.md finding 6: a forgotten transaction must not hold a snapshot for long.
        idle_in_transaction_session_timeout: '60000',
      }),
    });
  });

  it('places the database in isolated subnets only', () => {
    const [, group] = ofType(R, 'AWS::RDS::DBSubnetGroup')[0]!;
    const refs = group.Properties.SubnetIds.map((x: { Ref: string }) => x.Ref);
    expect(refs).toHaveLength(2);
    for (const ref of refs) expect(ref).toMatch(/VpcdbSubnet/);
  });

  it('runs every function of ours on Node 24, arm64, in the private app subnets; the rest are CDK deploy-time providers', () => {
    const ours = [ids.api, ids.consumer, ids.reaper, ids.migrate];
    const functions = ofType(R, 'AWS::Lambda::Function');
    for (const [id, fn] of functions) {
      expect(fn.Properties.Runtime, id).toBe('nodejs24.x');
      if (!ours.includes(id)) {
        expect(id).toMatch(/^(AWSCDKTriggerCustomResourceProvider|LogRetention)/);
        continue;
      }
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      const subnets = fn.Properties.VpcConfig.SubnetIds.map((x: { Ref: string }) => x.Ref);
      expect(subnets).toHaveLength(2);
      for (const ref of subnets) expect(ref).toMatch(/VpcappSubnet/);
      expect(fn.Properties.LoggingConfig.LogGroup).toBeDefined();
    }
    expect(functions.map(([id]) => id)).toEqual(expect.arrayContaining(ours));
  });

  it('gives each function the environment of DESIGN.md section 3 and its own database user', () => {
    const env = (id: string) => R[id]!.Properties.Environment.Variables;
    const tls = {
      DB_SSL: '1',
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
      DB_NAME: 'taskengine',
      DB_PORT: '5432',
    };
    for (const [id, user] of [
      [ids.api, 'dte_api_login'],
      [ids.consumer, 'dte_consumer_login'],
      [ids.reaper, 'dte_reaper_login'],
    ] as const) {
      expect(env(id)).toMatchObject({ ...tls, DB_IAM_AUTH: '1', DB_USER: user });
      expect(env(id).PUSHGATEWAY_URL).toBe('http://pushgateway.taskengine.internal:9091');
      expect(env(id).DB_SECRET_ARN).toBeUndefined();
    }
    expect(env(ids.consumer)).toMatchObject({
      LEASE_SECONDS: '30',
      BATCH_SIZE: '500',
      CONSUMER_CONCURRENCY: '10',
      CONSUMER_FANOUT_MAX: '4',
      CONSUMER_FUNCTION_NAME: R[ids.consumer]!.Properties.FunctionName,
    });
    expect(env(ids.reaper)).toMatchObject({ RETENTION_DAYS: '7' });
    expect(env(ids.migrate)).toMatchObject({
      ...tls,
      DB_SECRET_ARN: { 'Fn::GetAtt': [ids.instance, 'MasterUserSecret.SecretArn'] },
    });
    expect(env(ids.migrate).DB_IAM_AUTH).toBeUndefined();
  });

  it('reserves exactly one reaper and caps the consumer at consumerMaxConcurrency and the api at apiMaxConcurrency', () => {
    expect(R[ids.reaper]!.Properties.ReservedConcurrentExecutions).toBe(1);
    expect(R[ids.consumer]!.Properties.ReservedConcurrentExecutions).toBe(
      DEFAULT_SETTINGS.consumerMaxConcurrency,
    );
    expect(R[ids.api]!.Properties.ReservedConcurrentExecutions).toBe(DEFAULT_SETTINGS.apiMaxConcurrency);
  });

  it("tells the api the consumer's timeout in seconds (CONSUMER_TIMEOUT_SECONDS)", () => {
    const env = R[ids.api]!.Properties.Environment.Variables;
    expect(env.CONSUMER_TIMEOUT_SECONDS).toBe(String(R[ids.consumer]!.Properties.Timeout));
    expect(env.CONSUMER_TIMEOUT_SECONDS).toBe(String(DEFAULT_SETTINGS.consumerTimeoutSeconds));
  });

  it('tells the migrate function where the database is: the RDS-managed secret holds only username and password', () => {
    const env = R[ids.migrate]!.Properties.Environment.Variables;
    expect(env.DB_HOST).toEqual({ 'Fn::GetAtt': [ids.instance, 'Endpoint.Address'] });
    expect(env.DB_PORT).toBe('5432');
    expect(env.DB_NAME).toBe('taskengine');
    expect(env.DB_SECRET_ARN).toEqual({ 'Fn::GetAtt': [ids.instance, 'MasterUserSecret.SecretArn'] });
  });

  it("logs every Lambda function, CDK's providers included, to a log group of the stack with a retention", () => {
    const fns = ofType(R, 'AWS::Lambda::Function');
    expect(fns.length).toBeGreaterThanOrEqual(6);
    for (const [id, fn] of fns) {
      const ref = fn.Properties.LoggingConfig?.LogGroup?.Ref as string | undefined;
      expect(ref, id).toBeDefined();
      expect(R[ref!]!.Type, id).toBe('AWS::Logs::LogGroup');
      expect(R[ref!]!.Properties.RetentionInDays, id).toBe(DEFAULT_SETTINGS.logRetentionDays);
    }
  });

  it('sets a retention on every log group', () => {
    for (const [id, group] of ofType(R, 'AWS::Logs::LogGroup'))
      expect(group.Properties.RetentionInDays, id).toBeGreaterThan(0);
    for (const [, retention] of ofType(R, 'Custom::LogRetention'))
      expect(retention.Properties.RetentionInDays).toBeGreaterThan(0);
  });

  it('authorizes every API route with AWS_IAM, throttles the stage and writes access logs', () => {
    const routes = ofType(R, 'AWS::ApiGatewayV2::Route');
    // DESIGN.md section 3, written out: the stack takes its routes from the handler's table.
    expect(routes.map(([, r]) => r.Properties.RouteKey).sort()).toEqual(
      [
        'POST /jobs',
        'POST /jobs/batch',
        'GET /jobs/{id}',
        'POST /jobs/{id}/cancel',
        'GET /schedules',
        'POST /schedules',
        'GET /schedules/{name}',
        'DELETE /schedules/{name}',
        'POST /schedules/{name}/pause',
        'POST /schedules/{name}/resume',
        'GET /queues/limits',
        'POST /queues/{name}/limits',
        'GET /queues/retention',
        'POST /queues/{name}/retention',
        'GET /health',
      ].sort(),
    );
    expect(API_ROUTES).toHaveLength(15);
    for (const [, route] of routes) expect(route.Properties.AuthorizationType).toBe('AWS_IAM');
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
    });
  });

  it('schedules the consumer and the reaper every minute, with retries and a dead-letter queue', () => {
    const schedules = ofType(R, 'AWS::Scheduler::Schedule');
    const targets = schedules.map(([, sch]) => sch.Properties.Target.Arn['Fn::GetAtt'][0]).sort();
    expect(targets).toEqual([ids.consumer, ids.reaper].sort());
    for (const [, sch] of schedules) {
      expect(sch.Properties.ScheduleExpression).toBe('rate(1 minute)');
      expect(sch.Properties.State).toBe('ENABLED');
      expect(sch.Properties.Target.RetryPolicy).toEqual({
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 60,
      });
      expect(sch.Properties.Target.DeadLetterConfig.Arn['Fn::GetAtt'][1]).toBe('Arn');
    }
  });

  it('migrates with a trigger after the database and before the schedules and the API', () => {
    const triggerId = s.stack.getLogicalId(s.stack.migration.node.findChild('Default') as never);
    const trigger = R[triggerId]!;
    expect(trigger.Type).toBe('Custom::Trigger');
    expect(trigger.DependsOn).toEqual(expect.arrayContaining([ids.instance, ids.dbSg]));
    // The handler is the migrate function's current version: a new bundle re-runs the trigger.
    const versionId = trigger.Properties.HandlerArn.Ref as string;
    expect(R[versionId]!.Type).toBe('AWS::Lambda::Version');
    expect(R[versionId]!.Properties.FunctionName).toEqual({ Ref: ids.migrate });
    expect(trigger.Properties.InvocationType).toBe('RequestResponse');
    for (const [, sch] of ofType(R, 'AWS::Scheduler::Schedule')) expect(sch.DependsOn).toContain(triggerId);
    for (const [, route] of ofType(R, 'AWS::ApiGatewayV2::Route'))
      expect(route.DependsOn).toContain(triggerId);
  });

  it('admits PostgreSQL only from the functions, the Pushgateway port only from the functions', () => {
    expect(ingressRules(R)).toEqual(
      [
        `${ids.dbSg} <- ${ids.functionsSg}:5432`,
        `${ids.dbSg} <- ${ids.migrateSg}:5432`,
        `${ids.pushgatewaySg} <- ${ids.functionsSg}:9091`,
        // Interface endpoints: Secrets Manager for migrate only, Lambda (fan-out) for the runtime functions.
        `NetworkVpcLambdaEndpointSecurityGroup073F4A30 <- ${ids.functionsSg}:443`,
        `NetworkVpcSecretsManagerEndpointSecurityGroup21FC5B38 <- ${ids.migrateSg}:443`,
      ].sort(),
    );
  });

  it('names a resource in every IAM statement except the two CDK providers whose targets cannot be named', () => {
    const statements: Array<{ policy: string; resource: string; action: unknown }> = [];
    for (const [id, policy] of ofType(R, 'AWS::IAM::Policy')) {
      for (const st of policy.Properties.PolicyDocument.Statement) {
        for (const res of [st.Resource].flat()) {
          statements.push({ policy: id, resource: JSON.stringify(res), action: st.Action });
        }
      }
    }
    const wildcards = statements.filter((x) => x.resource.includes('*'));
    for (const w of wildcards) {
      const known =
        (w.policy.startsWith('LogRetention') && w.resource === '"*"') ||
        // ECR's token action has no resource-level permissions; the pulls are scoped to the repository.
        (w.policy.startsWith('PushgatewayTaskExecutionRole') &&
          w.resource === '"*"' &&
          w.action === 'ecr:GetAuthorizationToken') ||
        // Scheduler may invoke the function's versions: "<function ARN>:*".
        (w.policy.startsWith('SchedulerRoleForTarget') && /"Fn::GetAtt".*":\*"/.test(w.resource));
      expect(known, `${w.policy}: ${w.resource}`).toBe(true);
    }
    // The runtime functions connect as their own database user, on this instance only.
    const connect = statements.filter((x) => x.action === 'rds-db:connect').map((x) => x.resource);
    expect(connect).toHaveLength(3);
    for (const user of ['dte_api_login', 'dte_consumer_login', 'dte_reaper_login'])
      expect(connect.some((r) => r.includes(`/${user}`) && r.includes('DbiResourceId'))).toBe(true);
  });

  it('runs a pinned Pushgateway image on Fargate arm64, from quay.io through an ECR pull-through cache, discoverable through Cloud Map', () => {
    const [[ruleId, rule]] = ofType(R, 'AWS::ECR::PullThroughCacheRule') as [[string, Cfn]];
    expect(rule.Properties).toMatchObject({ UpstreamRegistry: 'quay', UpstreamRegistryUrl: 'quay.io' });
    const prefix = rule.Properties.EcrRepositoryPrefix as string;
    expect(prefix).toMatch(/^[a-z0-9]{2,30}$/);
    const [, task] = ofType(R, 'AWS::ECS::TaskDefinition')[0]!;
    expect(task.Properties).toMatchObject({
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    const [container] = task.Properties.ContainerDefinitions;
    expect(container.PortMappings).toEqual([{ ContainerPort: 9091, Protocol: 'tcp' }]);
    // <account>.dkr.ecr.<region>.<suffix>/<prefix>/prometheus/pushgateway:vX.Y.Z, never Docker Hub.
    const image = JSON.stringify(container.Image);
    expect(image).toMatch(
      new RegExp(`\\.dkr\\.ecr\\..*/${prefix}/prometheus/pushgateway:v\\d+\\.\\d+\\.\\d+"`),
    );
    const [serviceId] = ofType(R, 'AWS::ECS::Service')[0]!;
    expect(R[serviceId]!.DependsOn).toContain(ruleId);
    const importActions = ofType(R, 'AWS::IAM::Policy')
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
      .filter((st: Cfn) => [st.Action].flat().includes('ecr:BatchImportUpstreamImage'));
    expect(importActions).toHaveLength(1);
    expect(JSON.stringify(importActions[0].Resource)).toContain(
      `repository/${prefix}/prometheus/pushgateway`,
    );
    s.template.hasResourceProperties('AWS::ServiceDiscovery::PrivateDnsNamespace', {
      Name: 'taskengine.internal',
    });
    s.template.hasResourceProperties('AWS::ServiceDiscovery::Service', { Name: 'pushgateway' });
    s.template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
    });
  });

  it('alarms on errors and throttles per function, the schedule DLQ, and database CPU, storage and connections', () => {
    const alarms = ofType(R, 'AWS::CloudWatch::Alarm').map(
      ([, a]) => `${a.Properties.Namespace}/${a.Properties.MetricName}`,
    );
    expect(alarms.filter((a) => a === 'AWS/Lambda/Errors')).toHaveLength(4);
    expect(alarms.filter((a) => a === 'AWS/Lambda/Throttles')).toHaveLength(4);
    expect(alarms).toEqual(
      expect.arrayContaining([
        'AWS/SQS/ApproximateNumberOfMessagesVisible',
        'AWS/RDS/CPUUtilization',
        'AWS/RDS/FreeStorageSpace',
        'AWS/RDS/DatabaseConnections',
      ]),
    );
    s.template.resourceCountIs('AWS::SNS::Topic', 0);
  });

  it('acknowledges cdk-nag findings one finding at a time, each with a reason', () => {
    const acks: Array<{ id: string; reason: string; path: string }> = [];
    for (const c of s.app.node.findAll()) {
      for (const m of c.node.metadata) {
        if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [id, reason] of Object.entries(m.data as Record<string, string>))
          if (id.startsWith('AwsSolutions::')) acks.push({ id, reason, path: c.node.path });
      }
    }
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      // A rule id, narrowed to one finding where the rule reports several (IAM4/IAM5).
      expect(a.id, a.path).toMatch(/^AwsSolutions::AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
      if (/IAM[45]/.test(a.id)) expect(a.id, a.path).toMatch(/\[.+\]$/);
      expect(a.reason.length, `${a.path} ${a.id}`).toBeGreaterThanOrEqual(60);
    }
  });
});
