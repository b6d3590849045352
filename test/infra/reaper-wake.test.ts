import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFunctionEnvironment, FunctionEnvironmentError } from '../../infra/env-check.ts';
import { type Cfn, logicalId, type Synthesized, synth } from './synth.ts';

/** The reaper wakes a consumer for a schedule's occurrence (issue 18): its grant and environment. */
describe('TaskEngineStack: the reaper wakes the consumer for schedules', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });
  afterAll(() => {
    if (s) rmSync(s.outdir, { recursive: true, force: true });
  });

  const reaperInvokes = () => {
    const role = logicalId(s.stack, s.stack.functions.reaper.role as never).replace(/[0-9A-F]{8}$/, '');
    const out: string[] = [];
    for (const [id, r] of Object.entries(s.json.Resources)) {
      if (r.Type !== 'AWS::IAM::Policy' || !id.startsWith(role)) continue;
      for (const st of r.Properties.PolicyDocument.Statement as Cfn[])
        if ([st.Action].flat().includes('lambda:InvokeFunction'))
          for (const res of [st.Resource].flat()) out.push(JSON.stringify(res));
    }
    return out;
  };

  it('lets the reaper invoke the consumer and nothing else', () => {
    const invokes = reaperInvokes();
    expect(invokes).toHaveLength(1);
    expect(invokes[0]).toContain(':function:TaskEngineTest-consumer');
  });

  it("tells the reaper the consumer's name and turns its wake on", () => {
    const env =
      s.json.Resources[logicalId(s.stack, s.stack.functions.reaper)]!.Properties.Environment.Variables;
    expect(env).toMatchObject({ CONSUMER_FUNCTION_NAME: 'TaskEngineTest-consumer', WAKE_ON_ENQUEUE: '1' });
  });

  it("fails synth's environment check on a reaper whose consumer name is missing (its wake on) or no function name", () => {
    const env = s.json.Resources[logicalId(s.stack, s.stack.functions.reaper)]!.Properties.Environment
      .Variables as Record<string, string>;
    const plain = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : 'deploy-time.invalid']),
    );
    expect(() => checkFunctionEnvironment('reaper', plain)).not.toThrow();
    expect(() =>
      checkFunctionEnvironment('reaper', { ...plain, CONSUMER_FUNCTION_NAME: 'my consumer' }),
    ).toThrow(FunctionEnvironmentError);
    const { CONSUMER_FUNCTION_NAME: _name, ...nameless } = plain;
    expect(() => checkFunctionEnvironment('reaper', nameless)).toThrow(/CONSUMER_FUNCTION_NAME/);
    expect(() => checkFunctionEnvironment('reaper', { ...nameless, WAKE_ON_ENQUEUE: '0' })).not.toThrow();
  });
});
