import {
  Annotations,
  type CfnElement,
  CfnOutput,
  CfnResource,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
} from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as triggers from 'aws-cdk-lib/triggers';
import type { Construct } from 'constructs';
import { connectionBudget, DEFAULT_SETTINGS, type TaskEngineSettings, validateSettings } from './config.ts';
import { Alarms } from './constructs/alarms.ts';
import { Api } from './constructs/api.ts';
import { Database } from './constructs/database.ts';
import { Functions } from './constructs/functions.ts';
import { Network } from './constructs/network.ts';
import { Pushgateway } from './constructs/pushgateway.ts';
import { Schedules } from './constructs/schedules.ts';
import { acknowledgeNag } from './nag.ts';

export interface TaskEngineStackProps extends StackProps {
  settings?: Partial<TaskEngineSettings>;
  /** Where functions/ and migrations/ are; the repository root by default. */
  projectRoot?: string;
}

/** Nearest CloudWatch Logs retention at or above `days`. */
function retentionFor(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter(
    (v): v is number => typeof v === 'number' && v > 0,
  );
  const pick = allowed.sort((a, b) => a - b).find((v) => v >= days);
  return (pick ?? logs.RetentionDays.TEN_YEARS) as logs.RetentionDays;
}

/**
 * durable-task-engine on AWS (DESIGN.md section 6): network, database, functions, api,
 * schedules, Pushgateway, alarms, and a deploy-time migration that runs after the database
 * exists and before the schedules start consuming.
 */
export class TaskEngineStack extends Stack {
  readonly settings: TaskEngineSettings;
  readonly network: Network;
  readonly database: Database;
  readonly pushgateway: Pushgateway;
  readonly functions: Functions;
  readonly api: Api;
  readonly schedules: Schedules;
  readonly alarms: Alarms;
  readonly migration: triggers.Trigger;

  constructor(scope: Construct, id: string, props: TaskEngineStackProps = {}) {
    super(scope, id, props);
    const settings = validateSettings({ ...DEFAULT_SETTINGS, ...props.settings });
    this.settings = settings;
    const logRetention = retentionFor(settings.logRetentionDays);
    // Logs outlive the stack unless this is a throwaway (destroy) deployment.
    const logRemoval = settings.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    this.network = new Network(this, 'Network', {
      natGateways: settings.natGateways,
      logRetention,
      removalPolicy: logRemoval,
    });
    this.database = new Database(this, 'Database', { network: this.network, settings });
    this.pushgateway = new Pushgateway(this, 'Pushgateway', {
      network: this.network,
      image: settings.pushgatewayImage,
      scrapeCidrs: settings.pushgatewayScrapeCidrs,
      logRetention,
      removalPolicy: logRemoval,
    });
    this.functions = new Functions(this, 'Functions', {
      network: this.network,
      database: this.database,
      settings,
      pushgatewayUrl: this.pushgateway.url,
      logRetention,
      removalPolicy: logRemoval,
      projectRoot: props.projectRoot,
    });
    this.api = new Api(this, 'Api', {
      handler: this.functions.api,
      settings,
      logRetention,
      removalPolicy: logRemoval,
    });
    this.schedules = new Schedules(this, 'Schedules', {
      consumer: this.functions.consumer,
      reaper: this.functions.reaper,
      consumerSchedule: settings.consumerSchedule,
      reaperSchedule: settings.reaperSchedule,
    });

    // Migrate at every deploy that changes the migrate bundle (new SQL files change it): after
    // the database and its network path exist, before anything that would use the schema.
    // A failed migration fails the deploy, and CloudFormation rolls back.
    this.migration = new triggers.Trigger(this, 'Migrate', {
      handler: this.functions.migrate,
      invocationType: triggers.InvocationType.REQUEST_RESPONSE,
      timeout: Duration.minutes(5),
      executeOnHandlerChange: true,
      executeAfter: [this.database, this.network],
      executeBefore: [this.schedules, this.api],
    });

    this.alarms = new Alarms(this, 'Alarms', {
      functions: {
        api: this.functions.api,
        consumer: this.functions.consumer,
        reaper: this.functions.reaper,
        migrate: this.functions.migrate,
      },
      deadLetterQueue: this.schedules.deadLetterQueue,
      instance: this.database.instance,
      topic: settings.alarmTopic,
      email: settings.alarmEmail,
      connectionsThreshold: settings.connectionsAlarmThreshold,
      allocatedStorageGiB: settings.allocatedStorageGiB,
    });

    this.acknowledgeCdkInternals();
    this.retainProviderLogs(logRetention, logRemoval);

    // Refusals already happened in validateSettings; what fits but deserves a look is a warning.
    const budget = connectionBudget(settings);
    for (const warning of budget.warnings) Annotations.of(this).addWarningV2('dte:connectionBudget', warning);
    Annotations.of(this).addInfo(
      `reserved concurrency ${budget.reservedConcurrency} (api ${budget.demand.api} + consumer ` +
        `${budget.demand.consumer} + reaper ${budget.demand.reaper}): Lambda keeps 100 unreserved, so the ` +
        `account's concurrent-executions quota must be at least ${budget.accountQuotaNeeded}`,
    );

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.url,
      description: 'HTTP API endpoint (SigV4-signed requests)',
    });
    new CfnOutput(this, 'ApiId', { value: this.api.httpApi.apiId });
    new CfnOutput(this, 'PushgatewayUrl', { value: this.pushgateway.url });
    new CfnOutput(this, 'DatabaseEndpoint', { value: this.database.instance.dbInstanceEndpointAddress });
    new CfnOutput(this, 'OwnerSecretArn', { value: this.database.ownerSecretArn });
    new CfnOutput(this, 'ConsumerFunctionName', { value: this.functions.consumer.functionName });
    new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', { value: this.schedules.deadLetterQueue.queueUrl });
  }

  /**
   * The Lambda functions CDK creates for its own custom resources (the trigger's provider, the
   * log-retention provider) would log to a group Lambda creates on first use, without a
   * retention. Each gets a group of the stack's, with the stack's retention, as its logging target.
   */
  private retainProviderLogs(retention: logs.RetentionDays, removalPolicy: RemovalPolicy): void {
    for (const child of this.node.findAll()) {
      if (!(child instanceof CfnResource) || child.cfnResourceType !== 'AWS::Lambda::Function') continue;
      if (child instanceof lambda.CfnFunction) continue; // our functions name their log group
      const group = new logs.LogGroup(child.node.scope!, `${child.node.id}Logs`, {
        retention,
        removalPolicy,
      });
      child.addPropertyOverride('LoggingConfig', { LogGroup: group.logGroupName });
    }
  }

  /**
   * Findings on resources CDK creates for us at the stack root, each acknowledged on that
   * resource only, for the exact finding.
   */
  private acknowledgeCdkInternals(): void {
    const basicExecution =
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
    for (const child of this.node.children) {
      if (child.node.id === 'AWSCDK.TriggerCustomResourceProviderCustomResourceProvider') {
        acknowledgeNag(
          child,
          basicExecution,
          'CDK-owned provider of the deploy-time migration trigger: the managed policy only writes its logs; ' +
            'its one other permission invokes the migrate function version.',
        );
      } else if (child.node.id.startsWith('LogRetention')) {
        acknowledgeNag(
          child,
          basicExecution,
          'CDK-owned provider that sets the retention of the log groups RDS creates: the managed policy only writes its logs.',
        );
        acknowledgeNag(
          child,
          'AwsSolutions-IAM5[Resource::*]',
          'RDS creates its log groups itself, after the instance exists, so their ARNs cannot be named before ' +
            'deployment; the actions are limited to logs:PutRetentionPolicy and logs:DeleteRetentionPolicy.',
        );
      } else if (child.node.id.startsWith('SchedulerRoleForTarget-')) {
        for (const fn of [this.functions.consumer, this.functions.reaper]) {
          const logicalId = this.getLogicalId(fn.node.defaultChild as CfnElement);
          acknowledgeNag(
            child,
            `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
            'EventBridge Scheduler role generated by CDK: it may invoke this one function and its versions ' +
              '(function-ARN:*), nothing else.',
          );
        }
      }
    }
    acknowledgeNag(
      this.database.instance,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
      'The enhanced-monitoring role RDS assumes: the AWS-maintained policy only lets it write the RDSOSMetrics ' +
        'log group.',
    );
  }
}
