#!/usr/bin/env node
// `npx taskctl …`: the operator CLI is TypeScript run by tsx, like `npm start`. tsImport loads
// ./taskctl/main.ts through tsx without registering a loader for the whole process.
import { tsImport } from 'tsx/esm/api';

await tsImport('./taskctl/main.ts', import.meta.url);
