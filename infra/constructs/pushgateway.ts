import { Annotations, Duration, Names, type RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as servicediscovery from 'aws-cdk-lib/aws-servicediscovery';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../nag.ts';
import type { Network } from './network.ts';

/** `registry/repository:tag` or `…@sha256:…` split; a reference without a registry host is Docker Hub. */
export function parseImage(ref: string): { registry: string; repository: string; tagOrDigest: string } {
  const at = ref.indexOf('@');
  const colon = ref.lastIndexOf(':');
  const split = at !== -1 ? at : colon;
  const name = ref.slice(0, split);
  const tagOrDigest = ref.slice(split + 1);
  const first = name.split('/')[0]!;
  const hasRegistry =
    name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return hasRegistry
    ? { registry: first, repository: name.slice(first.length + 1), tagOrDigest }
    : { registry: 'docker.io', repository: name.includes('/') ? name : `library/${name}`, tagOrDigest };
}

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
  /** The ECR pull-through cache rule the image comes through (quay.io images). */
  cacheRule: ecr.CfnPullThroughCacheRule | undefined;

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
    const image = this.image(props.image, taskDefinition);
    taskDefinition.addContainer('pushgateway', {
      image,
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
    if (this.cacheRule) this.service.node.addDependency(this.cacheRule);
    this.url = `http://${PUSHGATEWAY_SERVICE}.${PUSHGATEWAY_NAMESPACE}:${PUSHGATEWAY_PORT}`;
  }

  /**
   * A quay.io image (the default) is pulled through an ECR pull-through cache rule of this
   * stack: ECS pulls from the account's own ECR, which fetches the image from quay.io once and
   * keeps it, so task restarts and redeploys no longer depend on the upstream registry, and
   * nothing is pulled anonymously from Docker Hub (whose anonymous pull limit is per NAT IP).
   * Any other registry is used as given (e.g. an image you copied into your own ECR).
   */
  private image(ref: string, taskDefinition: ecs.FargateTaskDefinition): ecs.ContainerImage {
    const { registry, repository, tagOrDigest } = parseImage(ref);
    if (registry !== 'quay.io') {
      if (registry === 'docker.io' || registry === 'registry-1.docker.io')
        Annotations.of(this).addWarningV2(
          'dte:pushgatewayImageDockerHub',
          `pushgatewayImage ${ref} is pulled anonymously from Docker Hub through the NAT gateway: a rate limit or ` +
            'an outage fails the ECS deployment and the stack. Prefer quay.io/prometheus/pushgateway (pulled through ECR).',
        );
      return ecs.ContainerImage.fromRegistry(ref);
    }
    // Pull-through cache prefixes are unique per account and region: one per stack.
    const prefix = Names.uniqueResourceName(this, { maxLength: 30 }).toLowerCase();
    this.cacheRule = new ecr.CfnPullThroughCacheRule(this, 'QuayCache', {
      ecrRepositoryPrefix: prefix,
      upstreamRegistry: 'quay',
      upstreamRegistryUrl: 'quay.io',
    });
    const repositoryName = `${prefix}/${repository}`;
    const repo = ecr.Repository.fromRepositoryName(this, 'CachedRepository', repositoryName);
    // The first pull creates the cached repository and imports the image into it.
    const executionRole = taskDefinition.obtainExecutionRole();
    executionRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PullThroughCache',
        actions: ['ecr:CreateRepository', 'ecr:BatchImportUpstreamImage'],
        resources: [repo.repositoryArn],
      }),
    );
    acknowledgeNag(
      executionRole,
      'AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken (added by CDK for any ECR image) has no resource-level permissions; the pull ' +
        'actions are scoped to the one cached repository.',
    );
    return ecs.ContainerImage.fromEcrRepository(repo, tagOrDigest);
  }
}
