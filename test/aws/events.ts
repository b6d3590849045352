import { createHash, randomBytes } from 'node:crypto';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { ROUTES } from '../../functions/http/routes.ts';

/**
 * API Gateway HTTP API events (Lambda proxy integration, payload format version 2.0), authored
 * here after AWS's documented format ("Working with AWS Lambda proxy integrations for HTTP APIs",
 * payload format version 2.0). Every value is made up for these tests; test/aws/events.test.ts
 * checks each event against the zod schemas of @aws-lambda-powertools/parser, which nobody here
 * wrote.
 *
 * One caller per authorizer block API Gateway can put in `requestContext.authorizer`, each with
 * the quirks of the real thing that matter to the api handler:
 *
 * - `iam`: a SigV4 client (awscurl-like) on the stack's own shape: explicit routes, so
 *   `routeKey` is `"POST /jobs"` and `pathParameters` carry the ids; the `$default` stage; no
 *   `Content-Type` header, even on a POST with a JSON body; no query string, so no
 *   `queryStringParameters` at all; `cognitoIdentity` null (an IAM role, not a Cognito identity).
 * - `jwt`: a browser behind a custom domain with mutual TLS (`authentication.clientCert`), the
 *   `$default` stage through an API mapping; claims as HTTP API passes them (every value a
 *   string, a list claim flattened to `[a b]`), scopes, cookies, an IPv6 caller.
 * - `lambda`: a Lambda authorizer's context object, on a named stage (`v1`): API Gateway keeps the
 *   stage segment in `rawPath` and `requestContext.http.path` (`/v1/jobs/...`), so only the
 *   `routeKey` and `pathParameters` name the route; stage variables.
 * - `none`: no authorizer block, the `$default` route (`routeKey` `$default`, no
 *   `pathParameters`), routed by `rawPath`; a repeated query parameter comma-joined in
 *   `queryStringParameters`.
 *
 * All carry lower-case header names (HTTP API lower-cases them) with repeated headers
 * comma-joined. `base64` sends the body as API Gateway sends one it does not take for text
 * (`isBase64Encoded: true`); which bodies it takes for text depends on the Content-Type, so
 * tests use both forms.
 */
export type AuthorizerKind = 'iam' | 'jwt' | 'lambda' | 'none';
export const AUTHORIZER_KINDS: readonly AuthorizerKind[] = ['iam', 'jwt', 'lambda', 'none'];

export interface HttpRequest {
  method: 'GET' | 'POST' | 'HEAD';
  /** The path as the route declares it (`/jobs/42`); a named stage's prefix is added here. */
  path: string;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  base64?: boolean;
  /** Query parameters in order; repeated names are comma-joined in `queryStringParameters`. */
  query?: Array<[string, string]>;
}

const REGION = 'us-east-1';
const ACCOUNT = '210987654321';
const API_ID = 'q8dte2rvk5';
const EXECUTE_API = `${API_ID}.execute-api.${REGION}.amazonaws.com`;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

interface Caller {
  stage: string;
  /** `$default`: a catch-all route, so API Gateway sends `$default` and no path parameters. */
  routes: 'explicit' | '$default';
  domainName: string;
  sourceIp: string;
  userAgent: string;
  headers: (req: HttpRequest, now: Date) => Record<string, string>;
  cookies?: string[];
  stageVariables?: Record<string, string>;
  authentication?: APIGatewayProxyEventV2['requestContext']['authentication'];
  authorizer?: Record<string, unknown>;
}

const amzDate = (now: Date) =>
  now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
const hex = (seed: string) => createHash('sha256').update(seed).digest('hex');

const CALLERS: Record<AuthorizerKind, Caller> = {
  iam: {
    stage: '$default',
    routes: 'explicit',
    domainName: EXECUTE_API,
    sourceIp: '198.51.100.23',
    userAgent: 'awscurl/0.36',
    headers: (req, now) => ({
      accept: '*/*',
      'accept-encoding': 'gzip, deflate',
      authorization:
        `AWS4-HMAC-SHA256 Credential=ASIAT5DTEQ7EXAMPLE2K/${amzDate(now).slice(0, 8)}/${REGION}/execute-api/aws4_request, ` +
        `SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=${hex(`sig ${req.method} ${req.path}`)}`,
      'x-amz-date': amzDate(now),
      'x-amz-security-token': 'FQoGZXIvYXdzEDTEexampleSessionTokenNotARealOne//////////wEaDA==',
    }),
    authorizer: {
      iam: {
        accessKey: 'ASIAT5DTEQ7EXAMPLE2K',
        accountId: ACCOUNT,
        callerId: 'AROATDTE4ENQUEUER7XQ:dte-enqueue-session',
        cognitoIdentity: null,
        principalOrgId: 'o-dte4x9k2qm',
        userArn: `arn:aws:sts::${ACCOUNT}:assumed-role/dte-enqueuer/dte-enqueue-session`,
        userId: 'AROATDTE4ENQUEUER7XQ:dte-enqueue-session',
      },
    },
  },
  jwt: {
    stage: '$default',
    routes: 'explicit',
    domainName: 'jobs.dte.example.com',
    sourceIp: '2001:db8:4a1:7::2c',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
    headers: (req) => ({
      accept: 'application/json, text/plain, */*',
      'accept-language': 'en-GB,en;q=0.8',
      authorization: 'Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImR0ZS10ZXN0In0.eyJzdWIiOiJ0ZXN0In0.bm90LXNpZ25lZA',
      ...(req.body === undefined ? {} : { 'content-type': 'application/json;charset=UTF-8' }),
      origin: 'https://console.dte.example.com',
      referer: 'https://console.dte.example.com/jobs',
    }),
    cookies: ['dte_theme=dark', 'dte_session=s%3Aq1w2e3r4t5'],
    authentication: {
      clientCert: {
        clientCertPem:
          '-----BEGIN CERTIFICATE-----\nMIIBdteTESTcertificateAuthoredForTheseTestsOnly\n-----END CERTIFICATE-----\n',
        subjectDN: 'CN=dte-console,O=Task Engine Tests',
        issuerDN: 'CN=dte-test-ca,O=Task Engine Tests',
        serialNumber: '4f:1c:9e:02',
        validity: { notBefore: 'Jan  2 08:00:00 2025 GMT', notAfter: 'Jan  2 08:00:00 2027 GMT' },
      },
    },
    authorizer: {
      jwt: {
        claims: {
          auth_time: '1740820000',
          client_id: '5dte0kq8m2n4p6r8t0v2x4z6b8',
          'cognito:groups': '[operators viewers]',
          exp: '1740823600',
          iat: '1740820000',
          iss: `https://cognito-idp.${REGION}.amazonaws.com/${REGION}_DtE4mPlE9`,
          jti: '0f5e3c1a-8d2b-4e6f-9a7c-1b3d5f7e9a2c',
          scope: 'dte/jobs.write dte/jobs.read',
          sub: '7c1e4a2b-9d3f-4e8a-b6c5-2f0a1d3e5b7c',
          token_use: 'access',
        },
        scopes: ['dte/jobs.write', 'dte/jobs.read'],
      },
    },
  },
  lambda: {
    stage: 'v1',
    routes: 'explicit',
    domainName: EXECUTE_API,
    sourceIp: '203.0.113.77',
    userAgent: 'dte-partner-sync/3.2 (+https://partner.example.net)',
    headers: (req) => ({
      accept: 'application/json',
      'x-dte-tenant-token': 'tt_live_exampleOpaqueTokenForTests',
      ...(req.body === undefined ? {} : { 'content-type': 'application/json' }),
      'x-request-source': 'nightly-sync',
    }),
    cookies: ['partner_region=eu'],
    stageVariables: { logLevel: 'debug', release: '2025-03' },
    authorizer: {
      lambda: {
        tenant: 'northwind',
        plan: 'enterprise',
        quotaPerMinute: 600,
        readOnly: false,
      },
    },
  },
  none: {
    stage: '$default',
    routes: '$default',
    domainName: EXECUTE_API,
    sourceIp: '192.0.2.140',
    userAgent: 'curl/8.5.0',
    headers: () => ({ accept: '*/*' }),
  },
};

/** The route API Gateway would match among the stack's routes (the handler's ROUTES list). */
function matchStackRoute(
  method: string,
  path: string,
): { routeKey: string; pathParameters?: Record<string, string> } {
  const parts = path.split('/').filter(Boolean);
  for (const key of ROUTES) {
    const [m, template] = key.split(' ') as [string, string];
    const want = template.split('/').filter(Boolean);
    if ((m !== method && !(m === 'GET' && method === 'HEAD')) || want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    if (
      want.every((seg, i) => {
        if (!seg.startsWith('{')) return seg === parts[i];
        params[seg.slice(1, -1)] = parts[i]!;
        return true;
      })
    ) {
      return { routeKey: key, ...(Object.keys(params).length ? { pathParameters: params } : {}) };
    }
  }
  throw new Error(`${method} ${path} matches no route: API Gateway would answer 404 without invoking`);
}

/** `12/Mar/2025:19:03:58 +0000`, API Gateway's requestContext.time. */
function clfTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`
  );
}

/** An HTTP API payload 2.0 event for `req`, as API Gateway sends it for the given authorizer. */
export function httpApiEvent(kind: AuthorizerKind, req: HttpRequest): APIGatewayProxyEventV2 {
  const caller = CALLERS[kind];
  const now = new Date();
  const rawPath = caller.stage === '$default' ? req.path : `/${caller.stage}${req.path}`;
  const route =
    caller.routes === 'explicit' ? matchStackRoute(req.method, req.path) : { routeKey: '$default' };
  const text =
    req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  const query = req.query ?? [];
  const queryStringParameters: Record<string, string> = {};
  for (const [k, v] of query)
    queryStringParameters[k] = k in queryStringParameters ? `${queryStringParameters[k]},${v}` : v;
  const traceTime = Math.floor(now.getTime() / 1000).toString(16);
  const headers: Record<string, string> = {
    ...caller.headers(req, now),
    ...(text === undefined ? {} : { 'content-length': String(Buffer.byteLength(text)) }),
    host: caller.domainName,
    'user-agent': caller.userAgent,
    'x-amzn-trace-id': `Root=1-${traceTime}-${randomBytes(12).toString('hex')}`,
    'x-forwarded-for': caller.sourceIp,
    'x-forwarded-port': '443',
    'x-forwarded-proto': 'https',
  };
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: route.routeKey,
    rawPath,
    rawQueryString: query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'),
    ...(caller.cookies ? { cookies: [...caller.cookies] } : {}),
    headers,
    ...(query.length ? { queryStringParameters } : {}),
    requestContext: {
      accountId: ACCOUNT,
      apiId: API_ID,
      ...(caller.authentication ? { authentication: structuredClone(caller.authentication) } : {}),
      ...(caller.authorizer ? { authorizer: structuredClone(caller.authorizer) as never } : {}),
      domainName: caller.domainName,
      domainPrefix: caller.domainName.split('.')[0]!,
      http: {
        method: req.method,
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: caller.sourceIp,
        userAgent: caller.userAgent,
      },
      // API Gateway's request ids are 16 base64 characters ending in '='.
      requestId: randomBytes(11).toString('base64'),
      routeKey: route.routeKey,
      stage: caller.stage,
      time: clfTime(now),
      timeEpoch: now.getTime(),
    },
    ...(text === undefined ? {} : { body: req.base64 ? Buffer.from(text).toString('base64') : text }),
    ...(route.pathParameters ? { pathParameters: route.pathParameters } : {}),
    isBase64Encoded: text !== undefined && req.base64 === true,
    ...(caller.stageVariables ? { stageVariables: { ...caller.stageVariables } } : {}),
  };
  return event;
}
