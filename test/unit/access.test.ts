import { describe, expect, it } from 'vitest';
import { callerOf, canSee, MAX_CALLER_LENGTH, mayName, viewerOf } from '../../functions/engine/access.ts';
import { ConfigError, loadConfig } from '../../functions/platform/config.ts';

describe('the caller of an API Gateway request, and what it may see', () => {
  it('takes the JWT sub or the IAM caller ARN from the authorizer, and nothing else', () => {
    expect(callerOf({ authorizer: { jwt: { claims: { sub: 'u-1' }, scopes: null } } })).toBe('u-1');
    expect(callerOf({ authorizer: { iam: { userArn: 'arn:aws:iam::1:user/a' } } })).toBe(
      'arn:aws:iam::1:user/a',
    );
    expect(callerOf({ http: { method: 'GET' } })).toBeNull();
    expect(callerOf(undefined)).toBeNull();
    expect(callerOf({ authorizer: { jwt: { claims: { sub: 42 } } } })).toBeNull();
    expect(callerOf({ authorizer: { jwt: { claims: { sub: '' } } } })).toBeNull();
    expect(
      callerOf({ authorizer: { jwt: { claims: { sub: 'x'.repeat(MAX_CALLER_LENGTH + 1) } } } }),
    ).toBeNull();
  });

  it('shows everything by default; with creator, only the caller’s own jobs, and none to a caller without identity', () => {
    const anyone = viewerOf({ authorizer: { jwt: { claims: { sub: 'a' } } } });
    const alice = viewerOf({ authorizer: { jwt: { claims: { sub: 'a' } } } }, 'creator');
    const nobody = viewerOf({}, 'creator');
    expect([canSee(anyone, 'b'), canSee(anyone, null)]).toEqual([true, true]);
    expect([canSee(alice, 'a'), canSee(alice, 'b'), canSee(alice, null)]).toEqual([true, false, false]);
    expect([canSee(nobody, null), canSee(nobody, 'a')]).toEqual([false, false]);
    // A conflict names the job only to the caller that created it.
    expect([mayName(anyone, 'a'), mayName(anyone, 'b'), mayName(anyone, null)]).toEqual([true, false, false]);
    expect(mayName({ caller: null, creatorOnly: false }, null)).toBe(true);
    expect(mayName(nobody, null)).toBe(false);
  });

  it('reads JOBS_VISIBLE_TO as creator or all (default all) and refuses anything else', () => {
    expect(loadConfig({}).JOBS_VISIBLE_TO).toBe('all');
    expect(loadConfig({ JOBS_VISIBLE_TO: 'creator' }).JOBS_VISIBLE_TO).toBe('creator');
    expect(() => loadConfig({ JOBS_VISIBLE_TO: 'owner' })).toThrow(ConfigError);
  });
});
