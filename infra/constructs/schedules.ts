import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../nag.ts';

export interface SchedulesProps {
  consumer: lambda.IFunction;
  reaper: lambda.IFunction;
  consumerSchedule: string;
  reaperSchedule: string;
}

/**
 * EventBridge Scheduler drives the consumer and the reaper. Scheduler retries a failed
 * delivery twice within a minute (the next tick supersedes it after that) and then parks it
 * in a dead-letter queue, whose depth is alarmed.
 */
export class Schedules extends Construct {
  readonly consumer: scheduler.Schedule;
  readonly reaper: scheduler.Schedule;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeNag(
      this.deadLetterQueue,
      'AwsSolutions-SQS3',
      'This queue is itself the dead-letter queue of the consumer and reaper schedules; its depth is alarmed ' +
        'and its messages are only inspected, never consumed.',
    );

    const target = (fn: lambda.IFunction, source: string) =>
      new LambdaInvoke(fn, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 2,
        maxEventAge: Duration.minutes(1),
        input: scheduler.ScheduleTargetInput.fromObject({ source }),
      });

    this.consumer = new scheduler.Schedule(this, 'Consumer', {
      description: 'durable-task-engine: start a consumer',
      schedule: scheduler.ScheduleExpression.expression(props.consumerSchedule),
      target: target(props.consumer, 'schedule.consumer'),
      timeWindow: scheduler.TimeWindow.off(),
    });
    this.reaper = new scheduler.Schedule(this, 'Reaper', {
      description: 'durable-task-engine: recover expired leases, push totals, prune',
      schedule: scheduler.ScheduleExpression.expression(props.reaperSchedule),
      target: target(props.reaper, 'schedule.reaper'),
      timeWindow: scheduler.TimeWindow.off(),
    });
  }
}
