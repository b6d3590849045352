import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUNDLE_EXTERNALS,
  BUNDLE_TARGET,
  ESM_REQUIRE_BANNER,
  HANDLER_ENTRIES,
} from '../../infra/constructs/functions.ts';
import { REPO_ROOT } from '../../infra/paths.ts';
import { synth } from './synth.ts';

const run = promisify(execFile);
const names = Object.keys(HANDLER_ENTRIES) as Array<keyof typeof HANDLER_ENTRIES>;

/**
 * Imports a bundle in a fresh Node process (this machine's Node 20) with an empty environment:
 * no DATABASE_URL, no AWS settings. A module that connects, reads a secret or fails config at
 * import would throw or hang here; the process must also exit on its own (nothing left open).
 */
async function importInCleanProcess(file: string): Promise<{ handler: string; createHandler: string }> {
  const script = `const m = await import(${JSON.stringify(pathToFileURL(file).href)});
    console.log(JSON.stringify({ handler: typeof m.handler, createHandler: typeof m.createHandler }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '' },
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe('handler bundles', () => {
  let outdir: string;

  beforeAll(async () => {
    outdir = mkdtempSync(join(tmpdir(), 'dte-bundle-'));
    // The options NodejsFunction passes to esbuild (infra/constructs/functions.ts).
    await Promise.all(
      names.map((name) =>
        build({
          entryPoints: [join(REPO_ROOT, HANDLER_ENTRIES[name])],
          outfile: join(outdir, name, 'index.mjs'),
          bundle: true,
          platform: 'node',
          format: 'esm',
          target: BUNDLE_TARGET,
          mainFields: ['module', 'main'],
          banner: { js: ESM_REQUIRE_BANNER },
          external: BUNDLE_EXTERNALS,
          sourcemap: true,
          minify: true,
          keepNames: true,
          logLevel: 'silent',
        }),
      ),
    );
    cpSync(join(REPO_ROOT, 'migrations'), join(outdir, 'migrate', 'migrations'), { recursive: true });
  }, 120_000);
  afterAll(() => {
    if (outdir) rmSync(outdir, { recursive: true, force: true });
  });

  it.each(names)(
    'bundles %s for the Node 24 runtime and imports it cleanly, exporting handler',
    async (name) => {
      // Act
      const exported = await importInCleanProcess(join(outdir, name, 'index.mjs'));
      // Assess
      expect(exported).toEqual({ handler: 'function', createHandler: 'function' });
      expect(existsSync(join(outdir, name, 'index.mjs.map'))).toBe(true);
    },
  );
});

describe('cdk synth bundling', () => {
  it('bundles with local esbuild (no Docker) and ships migrations/ beside the migrate bundle', () => {
    // Act
    const s = synth({}, { bundle: true });
    // Assess
    const migrate =
      s.json.Resources[s.stack.getLogicalId(s.stack.functions.migrate.node.defaultChild as never)]!;
    const key = migrate.Properties.Code.S3Key as string;
    const assetDir = join(s.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    expect(readdirSync(assetDir).sort()).toEqual(['index.mjs', 'index.mjs.map', 'migrations']);
    // Every file, the function files and the dump in their folders too.
    const files = (dir: string) =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => statSync(join(dir, f)).isFile())
        .sort();
    const shipped = files(join(assetDir, 'migrations'));
    expect(shipped).toEqual(files(join(REPO_ROOT, 'migrations')));
    expect(shipped).toContain(join('functions', 'claim.sql'));
    for (const file of shipped)
      expect(readFileSync(join(assetDir, 'migrations', file), 'utf8')).toBe(
        readFileSync(join(REPO_ROOT, 'migrations', file), 'utf8'),
      );
    rmSync(s.outdir, { recursive: true, force: true });
  }, 180_000);
});
