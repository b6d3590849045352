import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DashboardServer, startDashboardServer } from '../../tools/dashboard/index.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const TOKEN = 'test-token-modules-0123456789abcdef';
const STATIC = join(import.meta.dirname, '..', '..', 'tools', 'dashboard', 'static');

/** Every .js file under static/, as a path relative to it ('views/jobs.js'). */
function staticModules(dir = STATIC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? staticModules(join(dir, e.name))
      : e.name.endsWith('.js')
        ? [relative(STATIC, join(dir, e.name))]
        : [],
  );
}

describe.runIf(await postgresAvailable())('dashboard page modules (native ES modules, no build step)', () => {
  let t: TestSchema;
  let server: DashboardServer;

  beforeAll(async () => {
    t = await createTestSchema('dashmods');
    server = await startDashboardServer({
      db: t.db,
      token: TOKEN,
      actor: 'dashboard:test',
      cacheOverview: false,
    });
  });
  afterAll(async () => {
    await server?.close();
    await t?.drop();
  });

  it('serves every module the entry imports, transitively, as JavaScript under the CSP, and no file is left unserved', async () => {
    // Prepare
    const base = `http://127.0.0.1:${server.port}`;
    const seen = new Set<string>();
    const queue = ['/ui/app.js'];
    const replies: Array<{ path: string; status: number; type: string | null; csp: string | null }> = [];
    // Act: follow the static imports as the browser does, from the entry index.html names.
    while (queue.length) {
      const path = queue.shift()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const res = await fetch(`${base}${path}`, { headers: { 'X-Dashboard-Token': TOKEN } });
      const text = await res.text();
      replies.push({
        path,
        status: res.status,
        type: res.headers.get('content-type'),
        csp: res.headers.get('content-security-policy'),
      });
      for (const m of text.matchAll(/^import [^;]*? from '(\.{1,2}\/[^']+)';$/gms))
        queue.push(new URL(m[1]!, `${base}${path}`).pathname);
    }
    const unlisted = await fetch(`${base}/ui/views/nope.js`, {
      headers: { 'X-Dashboard-Token': TOKEN },
    });
    // Assess
    for (const r of replies) {
      expect(r, r.path).toMatchObject({ status: 200, type: 'text/javascript; charset=utf-8' });
      expect(r.csp, r.path).toContain("script-src 'self'");
    }
    expect([...seen].map((p) => p.replace(/^\/ui\//, '')).sort()).toEqual(staticModules().sort());
    expect(seen.size).toBeGreaterThan(10);
    expect(unlisted.status).toBe(404);
  });
});
