import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { METRIC } from '../../functions/platform/metrics.ts';
import { requireBinary } from '../helpers/pushgateway.ts';

const dir = fileURLToPath(new URL('../../infra/prometheus/', import.meta.url));
const promtool = requireBinary(['promtool'], 'the Prometheus alert rule tests');

function run(...args: string[]) {
  const res = spawnSync(promtool!, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

describe.runIf(promtool)('Prometheus alert rules', () => {
  it('pass promtool check rules', () => {
    const { status, output } = run('check', 'rules', 'alerts.yml');
    expect(output).toContain('SUCCESS: 7 rules found');
    expect(status).toBe(0);
  });

  it('pass every promtool unit test, where each alert fires and where it stays silent', () => {
    const { status, output } = run('test', 'rules', 'alerts.test.yml');
    expect(output).toContain('SUCCESS');
    expect(output).not.toContain('FAILED');
    expect(status).toBe(0);
  });

  it('cover every alert with a firing case and a silent case', () => {
    const rules = readFileSync(`${dir}alerts.yml`, 'utf8');
    const tests = readFileSync(`${dir}alerts.test.yml`, 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    expect(alerts).toEqual([
      'TaskFailureRatioHigh',
      'TasksRunningPastExpectedTime',
      'DatabaseErrorsHigh',
      'MetricsLedgerStale',
      'MetricsLedgerMissing',
      'ScheduleMissedOccurrence',
      'OldSnapshotHeld',
    ]);
    // Each alertname block in the tests, split into "expects alerts" and "expects none".
    const blocks = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)];
    for (const alert of alerts) {
      const mine = blocks.filter((b) => b[1] === alert);
      expect(
        mine.some((b) => b[2] === undefined),
        `${alert} fires somewhere`,
      ).toBe(true);
      expect(
        mine.some((b) => b[2] === ' []'),
        `${alert} stays silent somewhere`,
      ).toBe(true);
    }
  });

  it('name only series the code exports', () => {
    const rules = readFileSync(`${dir}alerts.yml`, 'utf8');
    const exported = new Set<string>([...Object.values(METRIC), 'push_time_seconds']);
    const used = new Set(
      [...rules.matchAll(/\b(phase6_\w+|dte_\w+|push_time_seconds)\b/g)].map((m) => m[1]!),
    );
    expect([...used].filter((name) => !exported.has(name as never))).toEqual([]);
  });
});
