import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { functionLengths, functionsIn } from '../helpers/function-lengths.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** The bound: a function a reader can hold in mind is about a screen or two. */
const MAX_LINES = 120;
/**
 * Functions allowed past MAX_LINES, as `path:name`, each with why it stays whole. None today;
 * an entry here is a decision, written down, not a way round the check.
 */
const EXCEPTIONS: Record<string, string> = {};

describe('function length', () => {
  it(`no function in functions/ or tools/ is longer than ${MAX_LINES} lines, but the listed exceptions`, () => {
    // Act
    const all = functionLengths(ROOT, ['functions', 'tools']);
    const over = all.filter((f) => f.lines > MAX_LINES && !(`${f.file}:${f.name}` in EXCEPTIONS));
    // Assess
    expect(over.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`)).toEqual([]);
    // The walk reached the tree: the entry handlers, the dashboard's page modules and taskctl.
    const files = new Set(all.map((f) => f.file));
    for (const file of ['functions/consumer.ts', 'tools/dashboard/static/app.js', 'tools/taskctl/main.ts'])
      expect(files, file).toContain(file);
  });

  it('every exception still names a function that is over the bound (a stale entry is removed)', () => {
    const long = new Set(
      functionLengths(ROOT, ['functions', 'tools'])
        .filter((f) => f.lines > MAX_LINES)
        .map((f) => `${f.file}:${f.name}`),
    );
    expect(Object.keys(EXCEPTIONS).filter((key) => !long.has(key))).toEqual([]);
  });

  it('measures declarations, methods, constructors and arrows, nested ones too, from first line to last', () => {
    // Prepare
    const body = (n: number) => Array.from({ length: n - 2 }, (_, i) => `  step(${i});`).join('\n');
    const text = [
      `export function long() {\n${body(MAX_LINES + 5)}\n}`,
      `class C {\n  constructor() {\n${body(4)}\n  }\n  method(): void {\n${body(3)}\n  }\n}`,
      `const arrow = (x: number) => {\n${body(6)}\n};`,
      `function outer() {\n  const inner = () => {\n${body(3)}\n  };\n}`,
    ].join('\n');
    // Act
    const found = functionsIn('x.ts', text).map(({ name, line, lines }) => ({ name, line, lines }));
    // Assess
    expect(found).toEqual([
      { name: 'long', line: 1, lines: MAX_LINES + 5 },
      { name: 'constructor', line: MAX_LINES + 7, lines: 4 },
      { name: 'method', line: MAX_LINES + 11, lines: 3 },
      { name: 'arrow', line: MAX_LINES + 15, lines: 6 },
      { name: 'outer', line: MAX_LINES + 21, lines: 5 },
      { name: 'inner', line: MAX_LINES + 22, lines: 3 },
    ]);
  });
});
