import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { settingsFromContext } from './config.ts';
import { TaskEngineStack } from './task-engine-stack.ts';

/**
 * `npx cdk synth|deploy`. Env-agnostic: no account or region is resolved at synthesis, so it
 * needs no credentials and makes no lookups; `cdk deploy` targets the credentials' account
 * and region. cdk-nag's AwsSolutions checks fail synthesis on any unacknowledged finding.
 */
const app = new App();
const stackName = (app.node.tryGetContext('taskEngine:stackName') as string | undefined) ?? 'TaskEngine';
const settings = settingsFromContext(app);
new TaskEngineStack(app, stackName, {
  settings,
  description:
    'durable-task-engine: a durable task engine on Lambda, RDS PostgreSQL and EventBridge Scheduler',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
