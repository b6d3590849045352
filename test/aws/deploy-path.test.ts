import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueMany } from '../../functions/engine/enqueue.ts';
import { createDb } from '../../functions/platform/db.ts';
import { REPO_ROOT } from '../../infra/paths.ts';
import { type Cfn, type Synthesized, synth } from '../infra/synth.ts';
import { httpApiEvent } from './events.ts';
import {
  ARM64_SYSROOT,
  lambdaNode,
  type Moto,
  motoCreateRole,
  startMoto,
  startTlsCluster,
  type TlsCluster,
  TOOLS,
  toolsPresent,
} from './realism.ts';

/**
 * A first deploy, end to end, on parts nobody here wrote: the four bundles exactly as `cdk synth`
 * builds them, run by the Node 24 binary Lambda runs, with the environment the synthesized
 * template gives each function; moto_server's Secrets Manager holding the secret shape RDS really
 * writes ({username, password}); moto's Lambda taking the consumer's fan-out; a PostgreSQL that
 * speaks only TLS with scram, its CA reaching the functions the way Lambda's does
 * (NODE_EXTRA_CA_CERTS, read at process start); API Gateway HTTP API events authored after AWS's
 * documented payload 2.0 format and checked against Powertools' parser schemas (test/aws/events.ts).
 *
 * What only a real account can show (IAM tokens accepted by RDS, the RDS CA bundle, VPC
 * endpoints, quotas) is listed in docs/DEPLOY.md; here the runtime logins use scram passwords
 * from secrets of the same RDS shape instead of IAM tokens.
 */
const available = toolsPresent('test/aws/deploy-path', ['moto', 'openssl', 'initdb', 'npm']);

const REGION = 'us-east-1';
const RUNNER = join(REPO_ROOT, 'test', 'aws', 'lambda-runner.mjs');
type Fn = 'api' | 'consumer' | 'reaper' | 'migrate';
const LOGINS = { api: 'dte_api_login', consumer: 'dte_consumer_login', reaper: 'dte_reaper_login' } as const;

interface Invocation {
  node: string;
  arch: string;
  results: Array<{ ok: true; value: Cfn } | { ok: false; error: { name: string; message: string } }>;
  output: string;
}

describe.runIf(available)(
  'a first deploy on real parts (moto, TLS PostgreSQL, Node 24, the CDK bundles)',
  () => {
    let moto: Moto;
    let cluster: TlsCluster;
    let s: Synthesized;
    let node: string;
    let work: string;
    let admin: pg.Client;
    const secretArns: Partial<Record<'owner' | Fn, string>> = {};
    const sdk = () => ({
      region: REGION,
      endpoint: moto.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });

    const fnResource = (fn: Fn) =>
      s.json.Resources[s.stack.getLogicalId(s.stack.functions[fn].node.defaultChild as never)]!;
    const assetDir = (fn: Fn) =>
      join(s.outdir, `asset.${(fnResource(fn).Properties.Code.S3Key as string).replace(/\.zip$/, '')}`);

    /**
     * The function's environment from the synthesized template. Only what names this machine
     * instead of AWS changes: the database address and port, the CA file, the bundle path, the
     * secret ARN; IAM auth becomes a secret of the RDS shape (see the file comment).
     */
    function lambdaEnv(fn: Fn, overrides: Record<string, string | undefined> = {}): Record<string, string> {
      const props = fnResource(fn).Properties;
      const env: Record<string, string | undefined> = {};
      for (const [key, value] of Object.entries(props.Environment.Variables as Record<string, unknown>)) {
        if (typeof value === 'string') env[key] = value;
        else if (key === 'DB_HOST') env[key] = '127.0.0.1';
        else if (key === 'DB_SECRET_ARN') env[key] = secretArns.owner;
        else if (key === 'PUSHGATEWAY_URL') env[key] = undefined;
        else
          throw new Error(
            `${fn}: environment ${key} is a token this test does not know: ${JSON.stringify(value)}`,
          );
      }
      expect(env.NODE_EXTRA_CA_CERTS).toBe('/var/runtime/ca-cert.pem');
      env.NODE_EXTRA_CA_CERTS = cluster.caFile;
      expect(env.DB_PORT).toBe('5432');
      env.DB_PORT = String(cluster.port);
      if (env.MIGRATIONS_DIR) {
        expect(env.MIGRATIONS_DIR).toBe('/var/task/migrations');
        env.MIGRATIONS_DIR = join(assetDir(fn), 'migrations');
      }
      if (env.DB_IAM_AUTH === '1') {
        env.DB_IAM_AUTH = undefined;
        env.DB_SECRET_ARN = secretArns[fn];
      }
      const runtime = {
        AWS_LAMBDA_FUNCTION_NAME: props.FunctionName ?? `TaskEngineTest-${fn}`,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(props.MemorySize),
        AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_SESSION_TOKEN: 'testing',
        // The SDK's standard endpoint override: Secrets Manager and Lambda calls go to moto_server.
        AWS_ENDPOINT_URL: moto.endpoint,
        LAMBDA_TASK_ROOT: assetDir(fn),
        _HANDLER: props.Handler,
        TZ: ':UTC',
        LANG: 'en_US.UTF-8',
        PATH: '/usr/local/bin:/usr/bin:/bin',
      };
      const merged: Record<string, string | undefined> = { ...env, ...runtime, ...overrides };
      return Object.fromEntries(
        Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined),
      );
    }

    async function invoke(
      fn: Fn,
      events: unknown[],
      opts: { env?: Record<string, string | undefined>; timeoutMs?: number; command?: string[] } = {},
    ): Promise<Invocation> {
      const eventsFile = join(work, `${fn}-${randomBytes(4).toString('hex')}-events.json`);
      const resultsFile = eventsFile.replace(/events\.json$/, 'results.json');
      writeFileSync(eventsFile, JSON.stringify(events));
      const timeoutMs = opts.timeoutMs ?? Number(fnResource(fn).Properties.Timeout) * 1000;
      const command = opts.command ?? [node];
      const args = [...command.slice(1), RUNNER, assetDir(fn), eventsFile, resultsFile, String(timeoutMs)];
      const child = spawn(command[0]!, args, {
        cwd: assetDir(fn),
        env: lambdaEnv(fn, opts.env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => {
        output += d;
      });
      child.stderr.on('data', (d) => {
        output += d;
      });
      const kill = setTimeout(() => child.kill('SIGKILL'), 300_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(kill);
      let parsed: Omit<Invocation, 'output'>;
      try {
        parsed = JSON.parse(readFileSync(resultsFile, 'utf8'));
      } catch {
        throw new Error(`${fn} exited ${code} without results:\n${output.slice(-4000)}`);
      }
      return { ...parsed, output };
    }

    const createSecret = async (name: string, username: string, password: string) => {
      const sm = new SecretsManagerClient(sdk());
      // Exactly what RDS writes with manageMasterUserPassword: no host, port, dbname or engine.
      const out = await sm.send(
        new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ username, password }) }),
      );
      sm.destroy();
      return out.ARN!;
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'dte-aws-'));
      [moto, cluster] = await Promise.all([startMoto(), startTlsCluster()]);
      node = lambdaNode('x64');
      // The bundles and the template exactly as `cdk synth` makes them (NodejsFunction's esbuild).
      s = synth({}, { bundle: true });
      admin = new pg.Client(cluster.adminConfig());
      await admin.connect();
      // What RDS sets up: rds_iam exists; the master user logs in with a password and owns the
      // database. CREATEROLE and ADMIN OPTION on rds_iam come later, to see migrate refuse first.
      const ownerPassword = randomBytes(18).toString('hex');
      await admin.query('CREATE ROLE rds_iam NOLOGIN');
      await admin.query(`CREATE ROLE dte_owner LOGIN PASSWORD ${admin.escapeLiteral(ownerPassword)}`);
      await admin.query('CREATE DATABASE taskengine OWNER dte_owner');
      secretArns.owner = await createSecret(
        `rds!db-${randomBytes(8).toString('hex')}`,
        'dte_owner',
        ownerPassword,
      );
    }, 600_000);

    afterAll(async () => {
      await admin?.end().catch(() => {});
      await moto?.stop();
      cluster?.destroy();
      if (s) rmSync(s.outdir, { recursive: true, force: true });
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const adminQuery = async <R extends object>(sql: string, values?: unknown[]) => {
      const c = new pg.Client(cluster.adminConfig('taskengine'));
      await c.connect();
      try {
        return (await c.query(sql, values)).rows as R[];
      } finally {
        await c.end();
      }
    };

    it('runs the bundles on the Node 24 that Lambda runs', async () => {
      const { node: version, arch } = await invoke('migrate', [], {});
      expect(version).toMatch(/^v24\./);
      expect(arch).toBe('x64');
    });

    it('refuses a server certificate it cannot verify: without the CA in NODE_EXTRA_CA_CERTS migrate fails', async () => {
      const [r] = (await invoke('migrate', [{}], { env: { NODE_EXTRA_CA_CERTS: undefined } })).results;
      expect(r!.ok).toBe(false);
      expect(r!.ok === false && r!.error.message).toMatch(/self[- ]signed certificate|unable to verify/i);
    });

    it('fails the migrate trigger up front, naming what the owner lacks, and applies nothing', async () => {
      const [r] = (await invoke('migrate', [{}])).results;
      expect(r!.ok).toBe(false);
      expect(r!.ok === false && r!.error.message).toMatch(
        /0004_roles\.sql cannot run as dte_owner: it lacks CREATEROLE/,
      );
      const [t] = await adminQuery<{ t: string | null }>(
        `SELECT to_regclass('public.schema_migrations')::text AS t`,
      );
      expect(t!.t).toBeNull();
    });

    it('migrates as the owner from the RDS-managed secret ({username, password}) over verified TLS', async () => {
      // What the RDS master user has: CREATEROLE and (through rds_superuser) ADMIN OPTION on rds_iam.
      await admin.query('ALTER ROLE dte_owner CREATEROLE');
      await admin.query('GRANT rds_iam TO dte_owner WITH ADMIN OPTION');
      const inv = await invoke('migrate', [{}]);
      const [r] = inv.results;
      expect(r, inv.output.slice(-3000)).toMatchObject({ ok: true });
      const files = readdirSync(join(REPO_ROOT, 'migrations')).filter((f) => f.endsWith('.sql'));
      expect(r!.ok && r!.value.applied).toEqual(files.sort());
      expect(cluster.serverLog()).toMatch(
        /connection authorized: user=dte_owner database=taskengine.*SSL enabled/,
      );
      // 0004 made the three IAM login users, members of rds_iam.
      const members = await adminQuery<{ rolname: string }>(
        `SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
         JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'rds_iam' AND r.rolname LIKE 'dte_%_login' ORDER BY 1`,
      );
      expect(members.map((m) => m.rolname)).toEqual([
        'dte_api_login',
        'dte_consumer_login',
        'dte_reaper_login',
      ]);
      // The logins sign in with IAM tokens on RDS; here each gets a password in a secret of the RDS shape.
      for (const [fn, login] of Object.entries(LOGINS) as Array<[keyof typeof LOGINS, string]>) {
        const password = randomBytes(18).toString('hex');
        await admin.query(`ALTER ROLE ${login} PASSWORD ${admin.escapeLiteral(password)}`);
        secretArns[fn] = await createSecret(`dte-${fn}-login`, login, password);
      }
    });

    const enqueueAsOwner = async (jobs: Array<{ type: string; payload: unknown }>) => {
      const db = createDb({ ...cluster.adminConfig('taskengine'), applicationName: 'dte-test' });
      try {
        return await enqueueMany(db, jobs);
      } finally {
        await db.end();
      }
    };

    it('routes HTTP API events (no authorizer, JWT, Lambda authorizer on stage v1, IAM) as dte_api_login', async () => {
      const [a, b] = await enqueueAsOwner([
        { type: 'example.echo', payload: { n: 1 } },
        { type: 'example.echo', payload: { n: 2 } },
      ]);
      const inv = await invoke('api', [
        httpApiEvent('none', { method: 'GET', path: '/health' }),
        httpApiEvent('jwt', { method: 'GET', path: `/jobs/${a!.job.id}` }),
        httpApiEvent('lambda', { method: 'POST', path: `/jobs/${b!.job.id}/cancel` }),
        httpApiEvent('iam', { method: 'GET', path: '/jobs/999999' }),
      ]);
      const res = inv.results.map((r) => (r.ok ? r.value : r.error));
      expect(
        res.map((r) => r.statusCode),
        JSON.stringify(res).slice(0, 3000),
      ).toEqual([200, 200, 200, 404]);
      expect(JSON.parse(res[1].body)).toMatchObject({
        id: a!.job.id,
        type: 'example.echo',
        status: 'queued',
      });
      expect(JSON.parse(res[2].body)).toMatchObject({ id: b!.job.id, status: 'failed' });
      expect(res[2].body).toContain('Cancelled');
      expect(cluster.serverLog()).toMatch(
        /connection authorized: user=dte_api_login database=taskengine.*SSL enabled/,
      );
    });

    // A SigV4 client such as awscurl may send no Content-Type: a JSON body without one is accepted
    // as JSON (issue 16; the api handler's side of it), plain or base64-encoded by API Gateway.
    it('accepts IAM-signed POSTs without Content-Type as JSON, plain and base64, and a base64 JWT POST', async () => {
      const inv = await invoke('api', [
        httpApiEvent('iam', {
          method: 'POST',
          path: '/jobs',
          body: { type: 'example.echo', payload: { hello: 'world' } },
        }),
        httpApiEvent('iam', {
          method: 'POST',
          path: '/jobs',
          body: { type: 'example.echo', payload: { n: 3 } },
          base64: true,
        }),
        httpApiEvent('jwt', {
          method: 'POST',
          path: '/jobs',
          body: { type: 'example.echo', payload: { n: 4 } },
          base64: true,
        }),
      ]);
      const res = inv.results.map((r) => (r.ok ? r.value : r.error));
      expect(
        res.map((r) => r.statusCode),
        JSON.stringify(res).slice(0, 2000),
      ).toEqual([201, 201, 201]);
      expect(res.map((r) => JSON.parse(r.body))).toMatchObject([
        { type: 'example.echo', status: 'queued' },
        { type: 'example.echo', status: 'queued' },
        { type: 'example.echo', status: 'queued' },
      ]);
    });

    it("drains as dte_consumer_login and fans out with Event invokes that moto's Lambda accepts (202)", async () => {
      const fanout = Number(fnResource('consumer').Properties.Environment.Variables.CONSUMER_FANOUT_MAX);
      const name = fnResource('consumer').Properties.FunctionName as string;
      expect(fanout).toBeGreaterThan(0);
      // moto's Lambda accepts an Event invoke of a function that exists (it would run it in Docker,
      // absent here, so the fanned-out consumers themselves do not run).
      const lambda = new LambdaClient(sdk());
      await lambda.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs22.x',
          Role: await motoCreateRole(moto.endpoint, 'dte-consumer'),
          Handler: 'index.handler',
          // An empty zip archive (end-of-central-directory record only).
          Code: { ZipFile: Uint8Array.from([0x50, 0x4b, 5, 6, ...new Array(18).fill(0)]) },
        }),
      );
      lambda.destroy();
      // A backlog the invocation cannot finish: full claims of 2, one task at a time, each 2 s,
      // 10 s of invocation. The last claim comes back full, so it fans out.
      const db = createDb({ ...cluster.adminConfig('taskengine'), applicationName: 'dte-test' });
      await enqueueMany(
        db,
        Array.from({ length: 12 }, () => ({ type: 'example.sleep', payload: { ms: 2000 } })),
      );
      await db.end();
      const inv = await invoke('consumer', [{ source: 'schedule.consumer' }], {
        env: { BATCH_SIZE: '2', CONSUMER_CONCURRENCY: '1' },
        timeoutMs: 10_000,
      });
      const [r] = inv.results;
      expect(r, inv.output.slice(-3000)).toMatchObject({ ok: true });
      expect(r!.ok && r!.value, JSON.stringify(r)).toMatchObject({ backlog: true, fannedOut: fanout });
      // fannedOut counts the Invoke calls the SDK saw answered 2xx by moto (it rejects anything
      // else), so the assertion above is the acceptance. moto's access log, written by its
      // threads as they answer, shows the requests reached it; its lines can interleave under
      // load (one CI dry run counted 3 of 4 after 15 s), so it is read for presence, not counted.
      const accepted = () =>
        moto.log().match(new RegExp(`/2015-03-31/functions/${name}/invocations`, 'g'))?.length ?? 0;
      await expect.poll(accepted, { timeout: 15_000, interval: 200 }).toBeGreaterThan(0);
      expect(cluster.serverLog()).toMatch(
        /connection authorized: user=dte_consumer_login database=taskengine.*SSL enabled/,
      );
    });

    it('reaps as dte_reaper_login', async () => {
      const inv = await invoke('reaper', [{ source: 'schedule.reaper' }]);
      const [r] = inv.results;
      expect(r, inv.output.slice(-3000)).toMatchObject({ ok: true });
      expect(r!.ok && r!.value).toMatchObject({ truncated: false, failed: expect.any(Number) });
      expect(cluster.serverLog()).toMatch(
        /connection authorized: user=dte_reaper_login database=taskengine.*SSL enabled/,
      );
    });

    const qemu = TOOLS.qemuAarch64();
    if (!qemu)
      console.warn(
        'test/aws/deploy-path: arm64 run skipped, qemu-aarch64-static is not installed (apt: qemu-user-static)',
      );
    it.runIf(qemu)(
      'runs the api bundle on the arm64 Node 24 (the functions are arm64) under qemu',
      async () => {
        const arm = lambdaNode('arm64');
        const inv = await invoke('api', [httpApiEvent('none', { method: 'GET', path: '/health' })], {
          command: ['qemu-aarch64-static', '-L', ARM64_SYSROOT, arm],
        });
        expect(inv.arch).toBe('arm64');
        expect(inv.node).toMatch(/^v24\./);
        expect(inv.results[0]).toMatchObject({ ok: true, value: { statusCode: 200 } });
      },
    );
  },
);
