import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file, so synthesis works from any working directory. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
