import { Token } from 'aws-cdk-lib';
import { CONFIG_VARIABLES, ConfigError, databaseMode, loadConfig } from '../functions/platform/config.ts';

/**
 * Stand-ins for values CloudFormation resolves at deploy (endpoint addresses, the secret's ARN,
 * the Pushgateway's URL): present, and of the form the stack gives them.
 */
const DEPLOY_TIME_STANDINS: Record<string, string> = {
  DB_SECRET_ARN: 'arn:aws:secretsmanager:deploy-time',
  PUSHGATEWAY_URL: 'http://deploy-time.invalid:9091',
};
const DEPLOY_TIME_DEFAULT = 'deploy-time.invalid';

/** Read by the Node runtime itself, not by the handlers' configuration. */
const RUNTIME_VARIABLES = new Set(['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS']);

/** A ConfigError found at synth: one of the family, so `instanceof ConfigError` still holds. */
export class FunctionEnvironmentError extends ConfigError {
  constructor(
    readonly functionName: string,
    variables: readonly string[],
    message: string,
  ) {
    super(`function ${functionName}: ${message}`, variables);
    this.name = 'FunctionEnvironmentError';
  }
}

/**
 * The handlers' own cold-start validation (loadConfig, and a complete credential mode), run at
 * synth over the environment the stack gives one function: a setting the handler would refuse
 * fails `cdk synth`, naming the function and the variable, instead of the deployed function's
 * first invocation. Stricter than cold start where the stack knows more: a database must be
 * configured, the RDS-managed secret (which holds no host) needs DB_HOST, and every variable
 * must be one the configuration reads.
 */
export function checkFunctionEnvironment(functionName: string, env: Readonly<Record<string, string>>): void {
  const unknown = Object.keys(env).filter((k) => !CONFIG_VARIABLES.has(k) && !RUNTIME_VARIABLES.has(k));
  if (unknown.length > 0)
    throw new FunctionEnvironmentError(
      functionName,
      unknown,
      `${unknown.join(', ')}: not a configuration variable (misspelt?)`,
    );
  const concrete: Record<string, string> = {};
  for (const [key, value] of Object.entries(env))
    concrete[key] = Token.isUnresolved(value) ? (DEPLOY_TIME_STANDINS[key] ?? DEPLOY_TIME_DEFAULT) : value;
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(concrete);
    databaseMode(config, { required: true, secretWithoutHost: true });
  } catch (err) {
    if (err instanceof ConfigError)
      throw new FunctionEnvironmentError(functionName, err.variables, err.message);
    throw err;
  }
  // The reaper wakes a consumer for the schedules' occurrences it materialised ahead (issue 18):
  // without the consumer's name that wake is silently off and a 03:00 job waits for the
  // consumer's schedule instead.
  if (functionName === 'reaper' && config.WAKE_ON_ENQUEUE && !config.CONSUMER_FUNCTION_NAME)
    throw new FunctionEnvironmentError(
      functionName,
      ['CONSUMER_FUNCTION_NAME'],
      'CONSUMER_FUNCTION_NAME: the reaper wakes the consumer for schedule occurrences (WAKE_ON_ENQUEUE) and needs its name',
    );
}
