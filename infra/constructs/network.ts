import type { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  natGateways: number;
  logRetention: logs.RetentionDays;
  removalPolicy: RemovalPolicy;
}

/**
 * Two AZs (fixed by the env-agnostic stack, so synthesis needs no lookup): public subnets hold
 * only the NAT gateway; functions and the Pushgateway run in private subnets with egress
 * (tasks call the outside world, ECR fetches the Pushgateway image from quay.io); the database
 * sits in isolated subnets with no route out at all.
 *
 * One security group per kind of client, so each ingress rule names exactly who may connect.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** The runtime functions: api, consumer, reaper. */
  readonly functionsSg: ec2.SecurityGroup;
  /** The migrate function: the only one that reads the owner's secret and connects as the owner. */
  readonly migrateSg: ec2.SecurityGroup;
  readonly appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  readonly dbSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: props.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      restrictDefaultSecurityGroup: false,
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });

    this.functionsSg = new ec2.SecurityGroup(this, 'FunctionsSg', {
      vpc: this.vpc,
      description: 'durable-task-engine api, consumer and reaper functions (no ingress)',
      allowAllOutbound: true,
    });
    this.migrateSg = new ec2.SecurityGroup(this, 'MigrateSg', {
      vpc: this.vpc,
      description: 'durable-task-engine migrate function (no ingress)',
      allowAllOutbound: true,
    });

    // Secrets Manager (migrate reads the owner's secret) and Lambda (the consumer fans out by
    // invoking itself) stay on the AWS network instead of crossing the NAT, each open only to
    // the functions that call it.
    const secrets = this.vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      subnets: this.appSubnets,
      open: false,
      privateDnsEnabled: true,
    });
    secrets.connections.allowDefaultPortFrom(this.migrateSg, 'HTTPS from the migrate function');
    const lambda = this.vpc.addInterfaceEndpoint('LambdaEndpoint', {
      service: ec2.InterfaceVpcEndpointAwsService.LAMBDA,
      subnets: this.appSubnets,
      open: false,
      privateDnsEnabled: true,
    });
    lambda.connections.allowDefaultPortFrom(this.functionsSg, 'HTTPS from the functions (consumer fan-out)');
  }
}
