/** The report as printed at the end of a run, and as Markdown for docs/BENCHMARKS.md. */
import { log, notes } from '../lib/results.ts';
import { summarize } from '../lib/stats.ts';
import {
  absoluteTargets,
  cpuTable,
  type Judged,
  met,
  type ScenarioCpuRow,
  scenarioCpuTable,
  sign,
  table,
  targets,
} from './tables.ts';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const cpuTotal = (c: { db: number | undefined; node: number }) =>
  c.db === undefined ? '' : (c.db + c.node).toFixed(1);

function verdict(t: Judged): { median: number; ok: boolean; perRound: string } {
  const median = summarize(t.ratios).median;
  return { median, ok: met(median, t), perRound: t.ratios.map((x) => x.toFixed(2)).join(' / ') };
}

const opt = (n: number | undefined, digits: number) =>
  n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits);
const scenarioCells = (c: ScenarioCpuRow) => [
  c.scenario,
  c.system,
  fmt(c.rate),
  opt(c.db, 1),
  opt(c.node, 1),
  opt(c.wal, 0),
  opt(c.bouncer, 1),
  String(c.n),
];

/** The figures as Markdown tables (written beside the JSON, pasted into docs/BENCHMARKS.md). */
export function markdown(): string {
  const lines = [
    '| scenario | system | workers | jobs | median jobs/s | min–max | runs |',
    '|---|---|--:|--:|--:|--:|--:|',
  ];
  for (const r of table()) {
    lines.push(
      `| ${r.scenario} | ${r.system} | ${r.workers ?? ''} | ${r.jobs.toLocaleString('en-US')} | ${fmt(r.rate.median)} | ${fmt(r.rate.min)}–${fmt(r.rate.max)} | ${r.rate.n} |`,
    );
  }
  lines.push('', '| target | per round | median | target | |', '|---|---|--:|--:|---|');
  for (const t of targets()) {
    const v = verdict(t);
    lines.push(
      `| ${t.what} | ${v.perRound} | ${v.median.toFixed(2)} | ${sign(t.kind)} ${t.target} | ${v.ok ? 'met' : '**missed**'} |`,
    );
  }
  const cpuRows = cpuTable();
  if (cpuRows.length) {
    lines.push(
      '',
      '| system (main drain) | PostgreSQL CPU µs/job | Node CPU µs/job | total | WAL B/job |',
      '|---|--:|--:|--:|--:|',
    );
    for (const c of cpuRows)
      lines.push(
        `| ${c.system} | ${c.db?.toFixed(1) ?? '—'} | ${c.node.toFixed(1)} | ${cpuTotal(c)} | ${c.wal?.toFixed(0) ?? '—'} |`,
      );
  }
  const scenarioRows = scenarioCpuTable();
  if (scenarioRows.length) {
    lines.push(
      '',
      '| scenario | system | median jobs/s | PostgreSQL CPU µs/job | Node CPU µs/job | WAL B/job | PgBouncer CPU µs/job | runs |',
      '|---|---|--:|--:|--:|--:|--:|--:|',
    );
    for (const c of scenarioRows) lines.push(`| ${scenarioCells(c).join(' | ')} |`);
  }
  lines.push('', ...absoluteTargets().map((l) => `- ${l}`));
  return `${lines.join('\n')}\n`;
}

/** Prints the end-of-run report and returns it (it goes into the results JSON too). */
export function printReport(): string {
  const out: string[] = [];
  out.push('', 'scenario   system                              workers     jobs   median jobs/s  (min–max)');
  for (const r of table()) {
    out.push(
      `${r.scenario.padEnd(10)} ${r.system.padEnd(35)} ${String(r.workers ?? '').padStart(7)} ${String(r.jobs).padStart(8)} ${fmt(r.rate.median).padStart(14)}  (${fmt(r.rate.min)}–${fmt(r.rate.max)}) n=${r.rate.n}`,
    );
  }
  const cpuRows = cpuTable();
  if (cpuRows.length) {
    out.push('', 'CPU per job in the main drain (median µs; PostgreSQL server + this Node process)');
    for (const c of cpuRows)
      out.push(
        `  ${c.system.padEnd(35)} db ${(c.db?.toFixed(1) ?? '—').padStart(6)}  node ${c.node.toFixed(1).padStart(6)}  total ${cpuTotal(c).padStart(6)}  WAL ${(c.wal?.toFixed(0) ?? '—').padStart(6)} B`,
      );
  }
  const scenarioRows = scenarioCpuTable();
  if (scenarioRows.length) {
    out.push('', 'drain, CPU and WAL per job (median): jobs/s, db µs, node µs, WAL B, PgBouncer µs, runs');
    for (const c of scenarioRows) {
      const [scenario, system, ...rest] = scenarioCells(c);
      out.push(`  ${scenario!.padEnd(16)} ${system!.padEnd(52)} ${rest.map((x) => x.padStart(7)).join(' ')}`);
    }
  }
  out.push('', 'targets (ratios per round, judged on the median)');
  for (const t of targets()) {
    const v = verdict(t);
    out.push(
      `${v.ok ? 'MET ' : 'MISS'}  ${t.what}: ${v.perRound} → median ${v.median.toFixed(2)} (target ${sign(t.kind)} ${t.target})`,
    );
  }
  out.push(...absoluteTargets());
  if (notes.length) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  const text = out.join('\n');
  log(text);
  return text;
}
