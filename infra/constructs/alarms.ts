import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface AlarmsProps {
  functions: Record<string, lambda.IFunction>;
  deadLetterQueue: sqs.IQueue;
  instance: rds.DatabaseInstance;
  /** Create an SNS topic the alarms notify. */
  topic: boolean;
  email: string | undefined;
  connectionsThreshold: number;
  allocatedStorageGiB: number;
}

/** CloudWatch namespace of the wake-on-enqueue metric filters (WakeInvokes, WakeInvokeFailures). */
export const WAKE_NAMESPACE = 'DurableTaskEngine';

/** Every alarm's period: 5 minutes, summed or sampled as each metric says. */
const FIVE_MINUTES = Duration.minutes(5);

/**
 * Alarms for what needs a human: function errors and sustained throttling, deliveries the
 * schedules could not make, and a database running hot, out of space or out of connections.
 */
export class Alarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly topic: sns.Topic | undefined;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    this.#functionAlarms(props.functions);
    const api = props.functions.api;
    if (api instanceof lambda.Function) this.#wakeAlarms(api);
    this.#deadLetterAlarm(props.deadLetterQueue);
    this.#databaseAlarms(props);
    this.topic = props.topic || props.email ? this.#notify(props.email) : undefined;
  }

  /** One alarm, missing data not breaching, kept in `alarms` for the topic's actions. */
  #add(
    name: string,
    props: cloudwatch.CreateAlarmOptions & { metric: cloudwatch.IMetric },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, name, {
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
    });
    this.alarms.push(alarm);
    return alarm;
  }

  #functionAlarms(functions: AlarmsProps['functions']): void {
    for (const [name, fn] of Object.entries(functions)) {
      this.#add(`${name}Errors`, {
        alarmDescription: `The ${name} function failed (an invocation threw or timed out).`,
        metric: fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      // A consumer at its concurrency cap is throttled by design now and then; throttling in
      // three consecutive 5-minute periods means the cap (or the account limit) is too low.
      this.#add(`${name}Throttles`, {
        alarmDescription: `The ${name} function was throttled for 15 minutes.`,
        metric: fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    }
  }

  /**
   * Wake on enqueue: the api logs each invoke and each failed one (engine/wake.ts); metric
   * filters count them. Failures are not user-visible (the schedule starts a consumer within a
   * minute) but sustained ones mean a missing permission or endpoint: latency is back to ~60 s.
   */
  #wakeAlarms(api: lambda.Function): void {
    const count = (name: string, message: string) =>
      new logs.MetricFilter(this, `${name}Filter`, {
        logGroup: api.logGroup,
        filterPattern: logs.FilterPattern.stringValue('$.message', '=', message),
        metricNamespace: WAKE_NAMESPACE,
        metricName: name,
        metricValue: '1',
        defaultValue: 0,
      }).metric({ period: FIVE_MINUTES, statistic: 'Sum' });
    count('WakeInvokes', 'consumer woken');
    this.#add('WakeInvokeFailures', {
      alarmDescription:
        'Wake invokes from the api to the consumer failed for 15 minutes (permission, VPC endpoint or throttling): jobs wait for the schedule.',
      metric: count('WakeInvokeFailures', 'wake invoke failed; the schedule will start a consumer'),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
  }

  #deadLetterAlarm(deadLetterQueue: sqs.IQueue): void {
    this.#add('ScheduleDeadLetters', {
      alarmDescription: 'A schedule could not invoke the consumer or the reaper (see the dead-letter queue).',
      metric: deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: FIVE_MINUTES,
        statistic: 'Maximum',
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
  }

  #databaseAlarms(props: AlarmsProps): void {
    const { instance } = props;
    this.#add('DatabaseCpu', {
      alarmDescription: 'Database CPU above 80% for 15 minutes.',
      metric: instance.metricCPUUtilization({ period: FIVE_MINUTES, statistic: 'Average' }),
      threshold: 80,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
    this.#add('DatabaseFreeStorage', {
      alarmDescription: 'Database free storage below 10% of the allocated size.',
      metric: instance.metricFreeStorageSpace({ period: FIVE_MINUTES, statistic: 'Minimum' }),
      threshold: props.allocatedStorageGiB * 1024 ** 3 * 0.1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    });
    this.#add('DatabaseConnections', {
      alarmDescription: `Database connections above ${props.connectionsThreshold} for 10 minutes.`,
      metric: instance.metricDatabaseConnections({ period: FIVE_MINUTES, statistic: 'Maximum' }),
      threshold: props.connectionsThreshold,
      evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
  }

  /** The SNS topic every alarm notifies (on alarm and on OK), under a key CloudWatch may use. */
  #notify(email: string | undefined): sns.Topic {
    // A customer-managed key: CloudWatch cannot publish to a topic under the AWS-managed SNS key.
    const key = new kms.Key(this, 'TopicKey', {
      description: 'durable-task-engine alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    const topic = new sns.Topic(this, 'Topic', {
      displayName: 'durable-task-engine alarms',
      masterKey: key,
      enforceSSL: true,
    });
    if (email) topic.addSubscription(new subscriptions.EmailSubscription(email));
    const action = new actions.SnsAction(topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    return topic;
  }
}
