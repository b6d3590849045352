import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as servicediscovery from 'aws-cdk-lib/aws-servicediscovery';
import { Construct } from 'constructs';
import type { Network } from './network.ts';

export const PUSHGATEWAY_PORT = 9091;
export const PUSHGATEWAY_NAMESPACE = 'taskengine.internal';
export const PUSHGATEWAY_SERVICE = 'pushgateway';

export interface PushgatewayProps {
  network: Network;
  image: string;
  /** CIDRs of Prometheus servers allowed to scrape (peered VPC, VPN); empty: only the functions. */
  scrapeCidrs: string[];
  logRetention: logs.RetentionDays;
  removalPolicy: RemovalPolicy;
}

/**
 * The Prometheus Pushgateway on ECS Fargate, one task (it keeps its state in memory; the
 * reaper re-pushes the absolute totals every minute, so a restart loses at most a minute of
 * per-invocation figures). Reachable as http://pushgateway.taskengine.internal:9091 through
 * Cloud Map, only from the functions and the configured scrape CIDRs.
 */
export class Pushgateway extends Construct {
  readonly url: string;
  readonly service: ecs.FargateService;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: PushgatewayProps) {
    super(scope, id);
    const { network } = props;

    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: network.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    const namespace = new servicediscovery.PrivateDnsNamespace(this, 'Namespace', {
      vpc: network.vpc,
      name: PUSHGATEWAY_NAMESPACE,
      description: 'durable-task-engine internal services',
    });

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 256,
      memoryLimitMiB: 512,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    taskDefinition.addContainer('pushgateway', {
      image: ecs.ContainerImage.fromRegistry(props.image),
      essential: true,
      readonlyRootFilesystem: true,
      user: 'nobody',
      portMappings: [{ containerPort: PUSHGATEWAY_PORT, protocol: ecs.Protocol.TCP }],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'pushgateway' }),
      healthCheck: {
        command: ['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${PUSHGATEWAY_PORT}/-/healthy`],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(10),
      },
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'Sg', {
      vpc: network.vpc,
      description: 'durable-task-engine Pushgateway',
      allowAllOutbound: true,
    });
    this.securityGroup.addIngressRule(
      network.functionsSg,
      ec2.Port.tcp(PUSHGATEWAY_PORT),
      'Pushgateway from the functions',
    );
    for (const cidr of props.scrapeCidrs) {
      this.securityGroup.addIngressRule(
        ec2.Peer.ipv4(cidr),
        ec2.Port.tcp(PUSHGATEWAY_PORT),
        `Prometheus scrape from ${cidr}`,
      );
    }

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: 1,
      // One task: replace it before stopping the old one, and roll back a deploy that never gets healthy.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      assignPublicIp: false,
      vpcSubnets: network.appSubnets,
      securityGroups: [this.securityGroup],
      cloudMapOptions: {
        cloudMapNamespace: namespace,
        name: PUSHGATEWAY_SERVICE,
        dnsRecordType: servicediscovery.DnsRecordType.A,
        dnsTtl: Duration.seconds(10),
      },
      enableExecuteCommand: false,
    });
    this.url = `http://${PUSHGATEWAY_SERVICE}.${PUSHGATEWAY_NAMESPACE}:${PUSHGATEWAY_PORT}`;
  }
}
