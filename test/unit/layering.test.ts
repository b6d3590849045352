import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const ts = (dir: string) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${dir}/${f}`);
const imports = (file: string) =>
  [...readFileSync(join(root, file), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]!);

const entries = ts('functions');
const platform = ts('functions/platform');
const tools = ['tools/local-engine.ts', 'tools/migrate.ts'];

describe('layering: entry files, platform and local tools reach the engine only through engine/index.ts', () => {
  for (const file of [...entries, ...platform, ...tools]) {
    it(`${file} imports no engine module but engine/index.ts`, () => {
      const engine = imports(file).filter((spec) => /(^|\/)engine\//.test(spec));
      expect(engine.filter((spec) => !spec.endsWith('engine/index.ts'))).toEqual([]);
    });
  }

  for (const file of entries) {
    it(`${file} builds through the runtime builder, with no cast at its edge`, () => {
      const text = readFileSync(join(root, file), 'utf8');
      expect(text).not.toMatch(/as unknown as/);
      expect(imports(file)).toContain('./platform/runtime.ts');
      expect(text).not.toMatch(/process\.env/);
    });
  }
});
