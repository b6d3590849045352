import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { ROOT, type Spawned, spawnTs } from '../helpers/processes.ts';

const INSTALL_TIMEOUT_MS = 240_000;

function run(cmd: string, args: string[], cwd: string, timeout = 120_000, env: Record<string, string> = {}) {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, ...env } });
  const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${res.status ?? res.signal}): ${out.slice(-3000)}`);
  return res.stdout;
}

/** The npm registry answers (installing the tarball fetches its dependencies unless cached). */
async function registryReachable(): Promise<boolean> {
  const registry = spawnSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).stdout.trim();
  try {
    const res = await fetch(new URL('-/ping', registry.endsWith('/') ? registry : `${registry}/`), {
      signal: AbortSignal.timeout(10_000),
    });
    return res.status < 500;
  } catch (err) {
    if (process.env.REQUIRE_POSTGRES === '1') return true; // CI: let the install fail loudly
    console.warn(`skipping the npm pack test: registry ${registry} unreachable (${(err as Error).message})`);
    return false;
  }
}

const ready = (await postgresAvailable()) && (await registryReachable());

describe.runIf(ready)('npm pack: the client installed from the tarball into a fresh project', () => {
  let t: TestSchema;
  let engine: Spawned;
  let base: string;
  let dir: string;
  let app: string;

  beforeAll(async () => {
    t = await createTestSchema('client_pack');
    engine = spawnTs('tools/local-engine.ts', {
      DATABASE_URL: t.url,
      PORT: '0',
      LOCAL_CONSUMER_INTERVAL_MS: '200',
      LOG_LEVEL: 'warn',
    });
    dir = mkdtempSync(join(tmpdir(), 'dte-pack-'));
    app = join(dir, 'app');
    // `npm pack` runs prepack (build:client): the tarball holds dist/client as built now.
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as Array<{
      filename: string;
    }>;
    const tarball = join(dir, packed[0]!.filename);
    run('mkdir', ['-p', app], dir);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'pack-test-app',
        private: true,
        type: 'module',
        dependencies: { 'durable-task-engine': `file:${tarball}`, pg: '^8.23.0', zod: '^4.6.7' },
        devDependencies: { '@types/node': '^20.19.43', '@types/pg': '^8.23.1' },
      }),
    );
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], app, INSTALL_TIMEOUT_MS);
    const [, port] = await engine.waitFor(/ready on port (\d+)/, 90_000);
    base = `http://127.0.0.1:${port}`;
  }, 420_000);
  afterAll(async () => {
    await engine?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await t?.drop();
  });

  it('installs only runtime dependencies, and the client bundle imports only zod and the two AWS signing packages', () => {
    const pkg = join(app, 'node_modules/durable-task-engine');
    const bundle = readFileSync(join(pkg, 'dist/client/index.js'), 'utf8');
    const bare = new Set(
      [...bundle.matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)]
        .map((m) => m[1]!)
        .filter((s) => !s.startsWith('node:')),
    );
    expect([...bare].sort()).toEqual(['@aws-sdk/credential-provider-node', '@smithy/signature-v4', 'zod']);
    expect(existsSync(join(pkg, 'dist/client/types/client/index.d.ts'))).toBe(true);
    for (const dev of ['aws-cdk-lib', '@electric-sql/pglite', 'vitest', 'esbuild'])
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
  });

  it('ESM: enqueues over HTTP and in its own transaction, and reads both back', () => {
    writeFileSync(
      join(app, 'main.mjs'),
      `
import pg from 'pg';
import { createClient, enqueue, ValidationError } from 'durable-task-engine/client';
const client = createClient({ url: process.env.ENGINE_URL, auth: 'none' });
const queued = await client.enqueue({ type: 'example.echo', payload: { from: 'the tarball' } });
const done = await client.waitFor(queued.id, { timeout: 60_000 });
const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
await db.connect();
await db.query('BEGIN');
const { job } = await enqueue(db, { type: 'example.echo', payload: 'in my transaction' });
await db.query('COMMIT');
await db.end();
const read = await client.get(job.id);
let invalid;
try { await client.enqueue({ type: 'no.such.task' }); } catch (err) { invalid = err instanceof ValidationError && err.status; }
console.log(JSON.stringify({ done, read, invalid }));
`,
    );
    const out = run('node', ['main.mjs'], app, 120_000, { ENGINE_URL: base, DATABASE_URL: t.url });
    const { done, read, invalid } = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(done).toMatchObject({ status: 'completed', result: { from: 'the tarball' } });
    expect(read).toMatchObject({ type: 'example.echo' });
    expect(invalid).toBe(422);
  });

  it('TypeScript: the examples and a typed sample type-check against the installed declarations', () => {
    for (const f of readdirSync(join(ROOT, 'examples')).filter((n) => n.endsWith('.ts')))
      copyFileSync(join(ROOT, 'examples', f), join(app, f));
    copyFileSync(join(ROOT, 'examples/tsconfig.json'), join(app, 'tsconfig.json'));
    writeFileSync(
      join(app, 'sample.ts'),
      `
import { createClient, enqueue, type JobView, type SqlClient } from 'durable-task-engine/client';
import { sendEmail } from './tasks.ts';
const client = createClient({ url: 'http://127.0.0.1:3000', auth: 'iam', region: 'eu-west-1' });
declare const db: SqlClient;
export const ok: Promise<JobView> = client.enqueue(sendEmail, { to: 'a@example.com', subject: 'hi' });
// @ts-expect-error the schema's subject is a string
export const wrong = client.enqueue(sendEmail, { to: 'a@example.com', subject: 42 });
// @ts-expect-error and so it is in the caller's transaction
export const wrongTx = enqueue(db, sendEmail, { to: 'a@example.com' });
`,
    );
    // No skipLibCheck here: the shipped declarations must compile as they are.
    const config = JSON.parse(readFileSync(join(app, 'tsconfig.json'), 'utf8'));
    config.compilerOptions.skipLibCheck = false;
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(config));
    const res = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], {
      cwd: app,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(`${res.stdout}${res.stderr}`).toBe('');
    expect(res.status).toBe(0);
  });
});
