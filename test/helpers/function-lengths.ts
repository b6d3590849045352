import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAst } from 'vitest/node';

/** One function, method or arrow function in a source file, and how many lines it spans. */
export interface FunctionLength {
  /** Path from the repository root. */
  file: string;
  /** The declared name, the method, property or variable it is assigned to, else `(anonymous)`. */
  name: string;
  line: number;
  lines: number;
}

const SOURCE = /\.(ts|mts|js|mjs)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(path);
    return SOURCE.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

interface AstNode {
  type: string;
  start: number;
  end: number;
  [key: string]: unknown;
}
const isNode = (v: unknown): v is AstNode =>
  typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
const FUNCTIONS = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

/** What a function is called where it stands: its own name, else what holds it. */
function nameOf(fn: AstNode, parent: AstNode | undefined): string {
  const named = (n: unknown) => (isNode(n) && typeof n.name === 'string' ? n.name : undefined);
  return (
    named(fn.id) ??
    (parent && ['MethodDefinition', 'Property', 'PropertyDefinition'].includes(parent.type)
      ? named(parent.key)
      : undefined) ??
    (parent?.type === 'VariableDeclarator' ? named(parent.id) : undefined) ??
    '(anonymous)'
  );
}

/** Every function with a body in one file's source text, nested ones included. */
export function functionsIn(file: string, text: string): FunctionLength[] {
  const program = parseAst(text, { lang: /\.m?ts$/.test(file) ? 'ts' : 'js' }) as unknown as AstNode;
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const lineOf = (offset: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const found: FunctionLength[] = [];
  const visit = (node: AstNode, parent: AstNode | undefined) => {
    if (FUNCTIONS.has(node.type) && node.body) {
      const line = lineOf(parent?.type === 'MethodDefinition' ? parent.start : node.start);
      found.push({ file, name: nameOf(node, parent), line, lines: lineOf(node.end - 1) - line + 1 });
    }
    for (const value of Object.values(node)) {
      for (const child of Array.isArray(value) ? value : [value]) if (isNode(child)) visit(child, node);
    }
  };
  visit(program, undefined);
  return found;
}

/** Every function under `dirs` (relative to `root`), longest first. */
export function functionLengths(root: string, dirs: readonly string[]): FunctionLength[] {
  return dirs
    .flatMap((dir) => sourceFiles(join(root, dir)))
    .flatMap((path) => functionsIn(relative(root, path), readFileSync(path, 'utf8')))
    .sort((a, b) => b.lines - a.lines);
}
