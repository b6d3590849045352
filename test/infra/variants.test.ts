import { rmSync } from 'node:fs';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_SETTINGS,
  SettingsError,
  settingsFromContext,
  validateSettings,
} from '../../infra/config.ts';
import { type Cfn, type Synthesized, synth } from './synth.ts';

describe('TaskEngineStack with RDS Proxy, a JWT authorizer, an alarm e-mail and a single AZ', () => {
  let s: Synthesized;
  const R = () => s.json.Resources;
  const idOf = (c: { node: { defaultChild?: unknown } }) =>
    s.stack.getLogicalId(c.node.defaultChild as never);

  beforeAll(() => {
    // Acknowledged findings (RDS3 for single-AZ) must not fail synthesis; unacknowledged ones would.
    s = synth({
      rdsProxy: true,
      multiAz: false,
      apiAuth: 'jwt',
      jwtIssuer: 'https://issuer.example.com/',
      jwtAudience: ['task-engine'],
      alarmEmail: 'ops@example.com',
      removalPolicy: 'destroy',
      pushgatewayScrapeCidrs: ['10.50.0.0/16'],
    });
  });
  afterAll(() => {
    if (s) rmSync(s.outdir, { recursive: true, force: true });
  });

  it('fronts the database with an RDS Proxy that requires TLS and IAM end to end', () => {
    s.template.hasResourceProperties('AWS::RDS::DBProxy', {
      EngineFamily: 'POSTGRESQL',
      RequireTLS: true,
      DefaultAuthScheme: 'IAM_AUTH',
    });
    const proxyId = idOf(s.stack.database.proxy!);
    for (const fn of [s.stack.functions.api, s.stack.functions.consumer, s.stack.functions.reaper]) {
      expect(R()[idOf(fn)]!.Properties.Environment.Variables.DB_HOST).toEqual({
        'Fn::GetAtt': [proxyId, 'Endpoint'],
      });
    }
    // migrate keeps connecting to the instance directly, as the owner.
    expect(R()[idOf(s.stack.functions.migrate)]!.Properties.Environment.Variables.DB_HOST).toEqual({
      'Fn::GetAtt': [idOf(s.stack.database.instance), 'Endpoint.Address'],
    });
  });

  it('admits the runtime functions to the proxy only, and the proxy and migrate to the database', () => {
    const ingress = Object.values(R())
      .filter((r) => r.Type === 'AWS::EC2::SecurityGroupIngress' && r.Properties.FromPort === 5432)
      .map(
        (r) =>
          `${r.Properties.GroupId['Fn::GetAtt'][0]} <- ${r.Properties.SourceSecurityGroupId['Fn::GetAtt'][0]}`,
      )
      .sort();
    const sg = (c: { node: { defaultChild?: unknown } }) => idOf(c);
    const proxySg = s.stack.getLogicalId(
      s.stack.database.proxy!.connections.securityGroups[0]!.node.defaultChild as never,
    );
    expect(ingress).toEqual(
      [
        `${sg(s.stack.database.securityGroup)} <- ${proxySg}`,
        `${sg(s.stack.database.securityGroup)} <- ${sg(s.stack.network.migrateSg)}`,
        `${proxySg} <- ${sg(s.stack.network.functionsSg)}`,
      ].sort(),
    );
  });

  it('grants rds-db:connect on the proxy to each runtime function, and on the instance to the proxy', () => {
    const connects = Object.entries(R())
      .filter(([, r]) => r.Type === 'AWS::IAM::Policy')
      .flatMap(([id, r]) =>
        r.Properties.PolicyDocument.Statement.filter((st: Cfn) => st.Action === 'rds-db:connect').map(
          (st: Cfn) => `${id} ${JSON.stringify(st.Resource)}`,
        ),
      );
    const proxyId = idOf(s.stack.database.proxy!);
    for (const user of ['dte_api_login', 'dte_consumer_login', 'dte_reaper_login']) {
      expect(connects.filter((c) => c.includes(`/${user}`) && c.includes(proxyId))).toHaveLength(1);
      expect(connects.filter((c) => c.includes(`/${user}`) && c.includes('DbiResourceId'))).toHaveLength(1);
    }
  });

  it('authorizes every route with the JWT authorizer', () => {
    const routes = Object.values(R()).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route');
    expect(routes).toHaveLength(15);
    for (const r of routes) expect(r.Properties.AuthorizationType).toBe('JWT');
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: 'https://issuer.example.com/', Audience: ['task-engine'] },
    });
  });

  it('sends every alarm to an encrypted SNS topic with the e-mail subscribed', () => {
    s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    for (const alarm of Object.values(R()).filter((r) => r.Type === 'AWS::CloudWatch::Alarm'))
      expect(alarm.Properties.AlarmActions).toHaveLength(1);
  });

  it('honours the removal policy and single-AZ choice, and lets the scrape CIDR reach the Pushgateway', () => {
    s.template.hasResource('AWS::RDS::DBInstance', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ MultiAZ: false, DeletionProtection: false }),
    });
    s.template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.50.0.0/16', FromPort: 9091, ToPort: 9091 })],
    });
  });
});

describe('cdk-nag gate', () => {
  it('fails synthesis on an unacknowledged AwsSolutions finding', () => {
    // Prepare: a queue without TLS enforcement or a dead-letter queue (SQS3, SQS4).
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'Bad');
    new sqs.Queue(stack, 'Plain', { encryption: sqs.QueueEncryption.SQS_MANAGED });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // Act / Assess
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS/);
  });
});

describe('deployment settings', () => {
  it('reads taskEngine:* context over the defaults, parsing booleans, numbers and lists', () => {
    const app = new App({
      context: {
        'taskEngine:stackName': 'Mine',
        'taskEngine:multiAz': 'false',
        'taskEngine:consumerMaxConcurrency': '25',
        'taskEngine:pushgatewayScrapeCidrs': '10.0.0.0/8, 192.168.0.0/16',
      },
    });
    const settings = settingsFromContext(app);
    expect(settings).toMatchObject({
      multiAz: false,
      consumerMaxConcurrency: 25,
      pushgatewayScrapeCidrs: ['10.0.0.0/8', '192.168.0.0/16'],
      instanceType: DEFAULT_SETTINGS.instanceType,
    });
  });

  it('rejects an unknown key, a bad value, short backups and an unpinned image, naming the setting', () => {
    expect(() => settingsFromContext(new App({ context: { 'taskEngine:multiAZ': true } }))).toThrow(
      /unknown context key taskEngine:multiAZ/,
    );
    expect(() => settingsFromContext(new App({ context: { 'taskEngine:rdsProxy': 'yes' } }))).toThrow(
      /taskEngine:rdsProxy/,
    );
    expect(() => validateSettings({ ...DEFAULT_SETTINGS, backupRetentionDays: 1 })).toThrow(SettingsError);
    expect(() =>
      validateSettings({ ...DEFAULT_SETTINGS, pushgatewayImage: 'prom/pushgateway:latest' }),
    ).toThrow(/pushgatewayImage/);
    expect(() => validateSettings({ ...DEFAULT_SETTINGS, apiAuth: 'jwt' })).toThrow(/jwtIssuer/);
  });
});
