import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAKE_NAMESPACE } from '../../infra/constructs/alarms.ts';
import { type Cfn, logicalId, type Synthesized, synth } from './synth.ts';

/** Wake on enqueue in the stack (issue 17): who may invoke the consumer, and the wake alarms. */
describe('TaskEngineStack: wake on enqueue', () => {
  let s: Synthesized;
  beforeAll(() => {
    // cdk-nag runs inside synth: an unacknowledged finding throws here.
    s = synth();
  });
  afterAll(() => {
    if (s) rmSync(s.outdir, { recursive: true, force: true });
  });

  /** Every lambda:InvokeFunction statement, as "policy -> resource". */
  const invokes = () => {
    const out: Array<{ policy: string; resource: string }> = [];
    for (const [id, r] of Object.entries(s.json.Resources)) {
      if (r.Type !== 'AWS::IAM::Policy') continue;
      for (const st of r.Properties.PolicyDocument.Statement as Cfn[]) {
        if (![st.Action].flat().includes('lambda:InvokeFunction')) continue;
        for (const res of [st.Resource].flat()) out.push({ policy: id, resource: JSON.stringify(res) });
      }
    }
    return out;
  };

  it('lets the api invoke the consumer and nothing else, and tells it the consumer name', () => {
    const api = s.stack.functions.api;
    const apiRole = logicalId(s.stack, api.role as never);
    const apiInvokes = invokes().filter((x) => x.policy.startsWith(apiRole.replace(/[0-9A-F]{8}$/, '')));
    expect(apiInvokes).toHaveLength(1);
    expect(apiInvokes[0]!.resource).toContain(':function:TaskEngineTest-consumer');
    const env = s.json.Resources[logicalId(s.stack, api)]!.Properties.Environment.Variables;
    expect(env).toMatchObject({ CONSUMER_FUNCTION_NAME: 'TaskEngineTest-consumer', WAKE_ON_ENQUEUE: '1' });
    // Nobody else but the consumer itself (fan-out, successor), the reaper (schedules) and the scheduler may invoke it.
    for (const x of invokes())
      expect(x.policy, x.resource).toMatch(
        /^(FunctionsapiServiceRole|FunctionsconsumerServiceRole|FunctionsreaperServiceRole|SchedulerRoleForTarget|Schedule)/,
      );
  });

  it('counts wake invokes and alarms on sustained wake failures from the api log group', () => {
    const filters = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::Logs::MetricFilter');
    const names = filters.map((f) => f.Properties.MetricTransformations[0].MetricName).sort();
    expect(names).toEqual(['WakeInvokeFailures', 'WakeInvokes']);
    for (const f of filters)
      expect(f.Properties.MetricTransformations[0].MetricNamespace).toBe(WAKE_NAMESPACE);
    const alarm = Object.values(s.json.Resources).find(
      (r) => r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.MetricName === 'WakeInvokeFailures',
    );
    expect(alarm?.Properties).toMatchObject({
      Namespace: WAKE_NAMESPACE,
      EvaluationPeriods: 3,
      Threshold: 1,
    });
  });
});
