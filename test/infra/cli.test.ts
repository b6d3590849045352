import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../infra/paths.ts';

const run = promisify(execFile);

describe('npx cdk synth', () => {
  it('synthesizes the app from cdk.json with no AWS credentials or config, no Docker and no lookups', async () => {
    // Prepare: an environment with nothing AWS in it and a HOME without ~/.aws.
    const home = mkdtempSync(join(tmpdir(), 'dte-home-'));
    const outdir = mkdtempSync(join(tmpdir(), 'dte-cdk-cli-'));
    // A `docker` first on PATH that fails: bundling must never reach for Docker.
    const shims = mkdtempSync(join(tmpdir(), 'dte-shims-'));
    writeFileSync(
      join(shims, 'docker'),
      '#!/bin/sh\necho "docker must not be used by cdk synth" >&2\nexit 97\n',
      {
        mode: 0o755,
      },
    );
    const env: Record<string, string> = {
      PATH: `${shims}:${process.env.PATH ?? ''}`,
      HOME: home,
      CI: 'true',
      // CDK's built-in schema check only warns; cdk-nag (registered by infra/app.ts) still gates.
      CDK_VALIDATION: 'false',
    };
    try {
      // Act
      await run('npx', ['cdk', 'synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', outdir], {
        cwd: REPO_ROOT,
        env,
        timeout: 240_000,
      });
      // Assess
      const template = JSON.parse(readFileSync(join(outdir, 'TaskEngine.template.json'), 'utf8'));
      expect(
        Object.values(template.Resources).some(
          (r) => (r as { Type: string }).Type === 'AWS::RDS::DBInstance',
        ),
      ).toBe(true);
      expect(existsSync(join(REPO_ROOT, 'cdk.context.json'))).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
      rmSync(shims, { recursive: true, force: true });
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 300_000);
});
