import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../infra/paths.ts';
import { chownToPostgres, freePort, ownedTempDir, runAsPostgres } from '../fault/cluster.ts';

/**
 * The AWS-realism suite runs parts nobody here wrote: moto's Secrets Manager and Lambda, a TLS
 * PostgreSQL with scram, the Node 24 binary Lambda runs, qemu for arm64, cfn-lint. Locally a
 * missing tool skips with a message; in CI (REQUIRE_POSTGRES=1) it fails the suite instead.
 */
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
export const REQUIRED = process.env.REQUIRE_POSTGRES === '1';

const works = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
};

export const TOOLS = {
  moto: () => works('python3', ['-c', 'import moto, moto.server, flask']),
  cfnLint: () => works('cfn-lint', ['--version']),
  openssl: () => works('openssl', ['version']),
  initdb: () => ['17', '16', '15', '14'].some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)),
  npm: () => works('npm', ['--version']),
  /** qemu-user-static and an arm64 glibc (libc6-arm64-cross, libstdc++6-arm64-cross) for Node's arm64 binary. */
  qemuAarch64: () =>
    works('sh', ['-c', 'command -v qemu-aarch64-static']) &&
    existsSync(`${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`),
} as const;

/**
 * True when every named tool is here. Missing ones: a skip message locally, an error under
 * REQUIRE_POSTGRES=1 (CI must run the suite, not skip it).
 */
export function toolsPresent(suite: string, names: Array<keyof typeof TOOLS>): boolean {
  const missing = names.filter((n) => !TOOLS[n]());
  if (missing.length === 0) return true;
  const message = `${suite}: skipped, missing ${missing.join(', ')} (python3 with moto 5, cfn-lint, openssl, PostgreSQL's initdb, npm)`;
  if (REQUIRED) throw new Error(`${message}; REQUIRE_POSTGRES=1 requires them (.ci/run installs them)`);
  console.warn(message);
  return false;
}

/** Polls `check` until it returns true, at most `timeoutMs`; no assertion on how long it took. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 90_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface Moto {
  endpoint: string;
  /** Everything moto_server printed (its request log included). */
  log(): string;
  stop(): Promise<void>;
}

/** moto_server on a free loopback port, stopped by the caller. */
export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor('moto_server', async () => (await fetch(`${endpoint}/moto-api/`)).ok);
  return {
    endpoint,
    log: () => out,
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** An IAM role in moto (Lambda's CreateFunction checks that its role exists). Query API, unsigned. */
export async function motoCreateRole(endpoint: string, name: string): Promise<string> {
  const body = new URLSearchParams({
    Action: 'CreateRole',
    Version: '2010-05-08',
    RoleName: name,
    AssumeRolePolicyDocument: JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ],
    }),
  });
  const res = await fetch(`${endpoint}/`, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      // moto_server picks the service from the credential scope; it does not check signatures.
      authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
  });
  const text = await res.text();
  const arn = /<Arn>([^<]+)<\/Arn>/.exec(text)?.[1];
  if (!res.ok || !arn) throw new Error(`moto CreateRole failed (${res.status}): ${text.slice(0, 300)}`);
  return arn;
}

export interface TlsCluster {
  port: number;
  dir: string;
  /** The CA that signed the server certificate (PEM file), for NODE_EXTRA_CA_CERTS. */
  caFile: string;
  /** Superuser connection over the Unix socket (trust): setup only, never what a function uses. */
  adminConfig(database?: string): { host: string; port: number; user: string; database: string };
  serverLog(): string;
  destroy(): void;
}

/** initdb, a self-signed CA and a server certificate it signed, pg_hba with `hostssl` only. */
function prepareTlsCluster(): { dir: string; caFile: string; bin: string; data: string } {
  const bin = ['17', '16', '15', '14']
    .map((v) => `/usr/lib/postgresql/${v}/bin`)
    .find((d) => existsSync(join(d, 'initdb')))!;
  const dir = ownedTempDir('dte-aws-pg-');
  const data = join(dir, 'data');
  const tls = join(dir, 'tls');
  mkdirSync(tls);
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: tls, stdio: 'pipe' });
  ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=dte-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  ssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  ]);
  writeFileSync(
    join(tls, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  ssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'server.ext',
    '-out',
    'server.crt',
  ]);
  runAsPostgres(join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-sync',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
  ]);
  for (const f of ['server.key', 'server.crt']) {
    execFileSync('cp', [join(tls, f), join(data, f)]);
    chownToPostgres(join(data, f));
  }
  execFileSync('chmod', ['600', join(data, 'server.key')]);
  writeFileSync(
    join(data, 'pg_hba.conf'),
    'local all postgres trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n',
  );
  chownToPostgres(join(data, 'pg_hba.conf'));
  return { dir, caFile: join(tls, 'ca.crt'), bin, data };
}

/**
 * A throwaway cluster shaped like RDS for what the functions see: TCP only over TLS
 * (`hostssl`, no `host` line), scram-sha-256, a server certificate from a self-signed CA with
 * 127.0.0.1 and localhost as names, and every connection logged.
 */
export async function startTlsCluster(): Promise<TlsCluster> {
  const { dir, caFile, bin, data } = prepareTlsCluster();
  const port = await freePort();
  const conf = {
    listen_addresses: "'127.0.0.1'",
    port,
    unix_socket_directories: `'${dir}'`,
    max_connections: 60,
    shared_buffers: "'32MB'",
    ssl: 'on',
    ssl_cert_file: "'server.crt'",
    ssl_key_file: "'server.key'",
    password_encryption: "'scram-sha-256'",
    log_connections: 'on',
    logging_collector: 'off',
  };
  writeFileSync(
    join(data, 'postgresql.auto.conf'),
    `${Object.entries(conf)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  chownToPostgres(join(data, 'postgresql.auto.conf'));
  const log = join(dir, 'server.log');
  runAsPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', log, 'start', '-w', '-t', '90']);
  let destroyed = false;
  return {
    port,
    dir,
    caFile,
    adminConfig: (database = 'postgres') => ({ host: dir, port, user: 'postgres', database }),
    serverLog: () => runAsPostgres('cat', [log], { allowFail: true }),
    destroy() {
      if (destroyed) return;
      destroyed = true;
      runAsPostgres(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-w', '-m', 'immediate', '-t', '60'], {
        allowFail: true,
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The `node` binary of the npm package node-linux-<arch> at Lambda's runtime major (24), fetched
 * with `npm pack` once and cached under node_modules/.cache (the tarball is ~50 MB).
 */
export function lambdaNode(arch: 'x64' | 'arm64', major = 24): string {
  const cache = join(REPO_ROOT, 'node_modules', '.cache', 'dte-lambda-node');
  mkdirSync(cache, { recursive: true });
  const prefix = `node-linux-${arch}-${major}.`;
  const cached = readdirSync(cache)
    .filter((d) => d.startsWith(prefix) && existsSync(join(cache, d, 'bin', 'node')))
    .sort()
    .at(-1);
  if (cached) return join(cache, cached, 'bin', 'node');
  const work = mkdtempSync(join(tmpdir(), 'dte-node-pack-'));
  try {
    const out = execFileSync(
      'npm',
      ['pack', `node-linux-${arch}@${major}`, '--pack-destination', work, '--silent'],
      {
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    const tarball = out.trim().split('\n').at(-1)!;
    execFileSync('tar', ['-xzf', join(work, tarball), '-C', work, 'package/bin/node'], { timeout: 120_000 });
    const name = tarball.replace(/\.tgz$/, '');
    const target = join(cache, name);
    // Atomic: two test files fetching at once both end with one complete copy.
    const staging = join(cache, `.${name}.${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    renameSync(join(work, 'package'), staging);
    try {
      renameSync(staging, target);
    } catch {
      rmSync(staging, { recursive: true, force: true });
    }
    return join(target, 'bin', 'node');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
