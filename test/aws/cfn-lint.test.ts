import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TaskEngineSettings } from '../../infra/config.ts';
import { synth } from '../infra/synth.ts';
import { CFN_LINT_IGNORES } from './cfn-lint-ignores.ts';
import { toolsPresent } from './realism.ts';

interface Finding {
  Level: 'Error' | 'Warning' | 'Informational';
  Rule: { Id: string };
  Message: string;
  Location: { Path: Array<string | number> };
}

/** cfn-lint (AWS's CloudFormation linter, its own resource schemas) on a synthesized template. */
function lint(settings: Partial<TaskEngineSettings>): Finding[] {
  const s = synth(settings);
  const file = join(s.outdir, 'template.json');
  writeFileSync(file, JSON.stringify(s.json));
  try {
    const r = spawnSync('cfn-lint', ['--format', 'json', '--', file], { encoding: 'utf8', timeout: 300_000 });
    // Exit codes are a bit mask of the levels found (2 error, 4 warning, 8 info); 1 is a crash.
    if (r.status === null || r.status === 1) throw new Error(`cfn-lint failed: ${r.stderr || r.error}`);
    return JSON.parse(r.stdout || '[]') as Finding[];
  } finally {
    rmSync(s.outdir, { recursive: true, force: true });
  }
}

const describeLint = (f: Finding) =>
  `${f.Level} ${f.Rule.Id} ${f.Location.Path.slice(0, 3).join('/')}: ${f.Message}`;

describe.runIf(toolsPresent('test/aws/cfn-lint', ['cfnLint']))('cfn-lint on the synthesized template', () => {
  const ignored = new Set(CFN_LINT_IGNORES.map((i) => i.rule));

  it.each([
    ['default settings', {}],
    ['the RDS Proxy variant', { rdsProxy: true }],
  ] as Array<[string, Partial<TaskEngineSettings>]>)(
    'reports no error and no warning beyond the listed ones: %s',
    (_name, settings) => {
      const findings = lint(settings);
      expect(findings.filter((f) => f.Level === 'Error').map(describeLint)).toEqual([]);
      expect(findings.filter((f) => !ignored.has(f.Rule.Id)).map(describeLint)).toEqual([]);
    },
    300_000,
  );

  it('gives every accepted warning a reason', () => {
    for (const i of CFN_LINT_IGNORES) {
      expect(i.rule).toMatch(/^[WI]\d{4}$/);
      expect(i.reason.length).toBeGreaterThan(40);
    }
  });
});
