import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { TaskEngineSettings } from '../../infra/config.ts';
import { TaskEngineStack } from '../../infra/task-engine-stack.ts';

// biome-ignore lint/suspicious/noExplicitAny: a synthesized template is untyped JSON, read by path in assertions.
export type Cfn = any;

export interface Synthesized {
  app: App;
  stack: TaskEngineStack;
  template: Template;
  /** The raw template, for checks that walk every resource. */
  json: {
    Resources: Record<
      string,
      { Type: string; Properties?: Cfn; DependsOn?: string[]; DeletionPolicy?: string }
    >;
  };
  outdir: string;
}

/**
 * Synthesizes the stack exactly as `infra/app.ts` does (cdk-nag AwsSolutions included, so any
 * unacknowledged finding throws here), into a temp dir. Bundling is skipped unless asked for:
 * the bundles have their own test, and esbuild four times per file would dominate the suite.
 */
export function synth(
  settings: Partial<TaskEngineSettings> = {},
  options: { bundle?: boolean } = {},
): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'dte-cdk-'));
  const app = new App({
    outdir,
    // CDK's built-in CloudFormation schema check only warns by default and takes ~15 s of the
    // ~17 s synthesis here; `npx cdk synth` in CI still runs it.
    builtinCloudFormationValidation: false,
    context: options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] },
  });
  const stack = new TaskEngineStack(app, 'TaskEngineTest', { settings });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  const json = assembly.getStackByName(stack.stackName).template;
  return { app, stack, template: Template.fromJSON(json), json, outdir };
}

/** Logical id of a construct's CloudFormation resource. */
export function logicalId(stack: TaskEngineStack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as never);
}
