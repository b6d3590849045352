import type { RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ROUTES } from '../../functions/http/routes.ts';
import type { TaskEngineSettings } from '../config.ts';

/** The handler's own route table (DESIGN.md section 3), so the API and the handler cannot drift. */
export const API_ROUTES: ReadonlyArray<[apigwv2.HttpMethod, string]> = ROUTES.map((key) => {
  const [method, path] = key.split(' ') as [keyof typeof apigwv2.HttpMethod, string];
  return [apigwv2.HttpMethod[method], path];
});

export interface ApiProps {
  handler: lambda.IFunction;
  settings: TaskEngineSettings;
  logRetention: logs.RetentionDays;
  removalPolicy: RemovalPolicy;
}

/**
 * HTTP API (payload v2) in front of the api function. Every route is authorized: SigV4 (IAM)
 * by default, so only principals granted execute-api:Invoke can enqueue; a JWT authorizer
 * when configured. The $default stage throttles and writes JSON access logs.
 */
export class Api extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const { settings } = props;
    const authorizer =
      settings.apiAuth === 'jwt'
        ? new HttpJwtAuthorizer('Jwt', settings.jwtIssuer!, { jwtAudience: settings.jwtAudience })
        : new HttpIamAuthorizer();

    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'durable-task-engine: enqueue and inspect jobs',
      createDefaultStage: false,
      defaultAuthorizer: authorizer,
    });
    const integration = new HttpLambdaIntegration('Api', props.handler, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    for (const [method, path] of API_ROUTES) {
      this.httpApi.addRoutes({ path, methods: [method], integration });
    }

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.stage = this.httpApi.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: settings.apiRateLimit, burstLimit: settings.apiBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            routeKey: '$context.routeKey',
            status: '$context.status',
            caller: '$context.identity.userArn',
            sourceIp: '$context.identity.sourceIp',
            latencyMs: '$context.responseLatency',
            integrationLatencyMs: '$context.integration.latency',
            integrationError: '$context.integrationErrorMessage',
            responseLength: '$context.responseLength',
          }),
        ),
      },
    });
  }

  /** The invoke URL of the $default stage. */
  get url(): string {
    return this.stage.url;
  }
}
