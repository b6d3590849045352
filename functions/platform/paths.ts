import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from './config.ts';

/**
 * MIGRATIONS_DIR (of `config`, else of the process's configuration) when set; else
 * migrations/ beside the repo root in development, or beside the bundle in a Lambda package.
 */
export function migrationsDir(config: Pick<Config, 'MIGRATIONS_DIR'> = loadConfig()): string {
  if (config.MIGRATIONS_DIR) return config.MIGRATIONS_DIR;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'migrations');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('migrations directory not found (set MIGRATIONS_DIR)');
}
