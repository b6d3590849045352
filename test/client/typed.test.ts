import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/processes.ts';

const FIXTURES = join(ROOT, 'test/client/fixtures');
const TSC = join(ROOT, 'node_modules/.bin/tsc');
const FLAGS = [
  '--ignoreConfig',
  '--noEmit',
  '--strict',
  '--target',
  'es2023',
  '--module',
  'nodenext',
  '--moduleResolution',
  'nodenext',
  '--allowImportingTsExtensions',
  '--skipLibCheck',
  '--types',
  'node',
];

function tsc(file: string) {
  const res = spawnSync(TSC, [...FLAGS, file], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: res.status, out: `${res.stdout}${res.stderr}` };
}

describe('typed tasks: the payload type comes from the task schema', () => {
  it('the sample compiles, its wrong payloads only because each is marked @ts-expect-error', () => {
    // Prepare: the same sample without its markers
    const sample = join(FIXTURES, 'typed-sample.ts');
    const source = readFileSync(sample, 'utf8');
    const marked = source.split('\n').filter((l) => l.includes('@ts-expect-error')).length;
    const unmarked = join(FIXTURES, `.unmarked-${process.pid}.ts`);
    writeFileSync(unmarked, source.replace(/^\s*\/\/ @ts-expect-error.*\n/gm, ''));
    try {
      // Act
      const ok = tsc(sample);
      const bad = tsc(unmarked);

      // Assess: one compile error per wrong payload, none elsewhere
      expect(ok.out).toBe('');
      expect(ok.status).toBe(0);
      expect(marked).toBe(5);
      expect(bad.status).not.toBe(0);
      expect(bad.out.match(/error TS\d+/g)).toHaveLength(marked);
    } finally {
      rmSync(unmarked, { force: true });
    }
  });
});
