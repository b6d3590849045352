import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelJob,
  claimJobs,
  completeJobs,
  enqueue,
  failJob,
  type JobStatus,
  readCounters,
  releaseJobs,
  renewLeases,
  requeueExpiredLeases,
} from '../../functions/engine/index.ts';
import { expireLease, jobFences, rowSnapshot } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

/**
 * The job state machine as a model: a handful of jobs, every lease ever handed out (stale ones
 * stay in the list, so later commands replay them), and the four exact totals. After each
 * command the database must agree with the model job by job, and a fenced-out call must leave
 * the row byte-for-byte as it was.
 */

const RUNBOOK_FORCE_RELEASE = (id: string) =>
  `UPDATE jobs SET status='queued', locked_at = NULL, locked_by = NULL WHERE id = ${Number(id)};`;
const RUNBOOK_SAFE_CANCEL = (id: string) =>
  `UPDATE jobs SET status='failed', updated_at = now() WHERE id = ${Number(id)};`;

const MAX_JOBS = 4;
/** How often fenced calls ran with a live and with a stale lease: proof the generator got there. */
const stats = { held: 0, stale: 0 };

interface ModelJob {
  status: JobStatus;
  attempts: number;
  maxAttempts: number;
  leaseToken: number;
}
interface Model {
  jobs: ModelJob[];
  leases: Array<{ job: number; leaseToken: number }>;
  totals: { submitted: number; completed: number; failed: number; recovered: number };
}
interface Real {
  t: TestSchema;
  ids: string[];
}
type Cmd = fc.AsyncCommand<Model, Real>;

/** Each job sits alone in its own queue, so a claim can target one job deterministically. */
const queueOf = (job: number) => `q${job}`;

function setStatus(m: Model, job: number, status: JobStatus): void {
  const j = m.jobs[job]!;
  if (status === 'completed' && j.status !== 'completed') m.totals.completed++;
  if (status === 'failed' && j.status !== 'failed') m.totals.failed++;
  j.status = status;
}

function claimInModel(m: Model, job: number): void {
  const j = m.jobs[job]!;
  j.attempts++;
  j.maxAttempts = Math.max(j.maxAttempts, j.attempts);
  j.leaseToken++;
  j.status = 'running';
  m.leases.push({ job, leaseToken: j.leaseToken });
}

async function expectAgreement(m: Model, r: Real): Promise<void> {
  const fences = await jobFences(r.t.db);
  const actual = r.ids.map((id) => fences.get(id));
  expect(actual).toEqual(m.jobs);
  const snap = await readCounters(r.t.db);
  expect(snap.totals).toEqual(m.totals);
  expect(snap.running).toBe(m.jobs.filter((j) => j.status === 'running').length);
}

async function deltaRows(r: Real): Promise<string> {
  const { rows } = await r.t.db.query<{ n: string }>('SELECT count(*) AS n FROM job_counter_deltas');
  return rows[0]!.n;
}

/** Runs a lease-fenced call; when the model says the lease is stale, the row and counters must not move. */
async function fenced(
  m: Model,
  r: Real,
  sel: number,
  call: (lease: { id: string; leaseToken: string }) => Promise<boolean>,
  onHeld: (job: number) => void,
): Promise<void> {
  // Counted from the newest lease: small selectors (fast-check's favourites) hit live ones.
  const lease = m.leases[m.leases.length - 1 - (sel % m.leases.length)]!;
  const id = r.ids[lease.job]!;
  const j = m.jobs[lease.job]!;
  const held = j.status === 'running' && j.leaseToken === lease.leaseToken;
  const rowBefore = await rowSnapshot(r.t.db, id);
  const deltasBefore = await deltaRows(r);
  const applied = await call({ id, leaseToken: String(lease.leaseToken) });
  expect(applied, `lease ${id}@${lease.leaseToken} held: ${held}`).toBe(held);
  stats[held ? 'held' : 'stale']++;
  if (held) onHeld(lease.job);
  else {
    expect(await rowSnapshot(r.t.db, id)).toBe(rowBefore);
    expect(await deltaRows(r)).toBe(deltasBefore);
  }
}

const failure = (lease: { id: string; leaseToken: string }, permanent: boolean) => ({
  ...lease,
  error: { message: 'boom', name: 'Error', attempt: 0, worker: 'model' },
  permanent,
  // Zero backoff: a retried job is claimable at once, so claims stay deterministic.
  backoffBaseSeconds: 0,
  maxBackoffSeconds: 0,
});

class Enqueue implements Cmd {
  constructor(readonly maxAttempts: number) {}
  check = (m: Readonly<Model>) => m.jobs.length < MAX_JOBS;
  async run(m: Model, r: Real) {
    const job = m.jobs.length;
    const { job: row } = await enqueue(r.t.db, {
      type: 'model',
      queue: queueOf(job),
      maxAttempts: this.maxAttempts,
    });
    r.ids.push(row.id);
    m.jobs.push({ status: 'queued', attempts: 0, maxAttempts: this.maxAttempts, leaseToken: 0 });
    m.totals.submitted++;
    await expectAgreement(m, r);
  }
  toString = () => `enqueue(max=${this.maxAttempts})`;
}

class ClaimOne implements Cmd {
  constructor(
    readonly sel: number,
    readonly advisoryLocks: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.jobs.length > 0;
  async run(m: Model, r: Real) {
    const job = this.sel % m.jobs.length;
    const claimable = m.jobs[job]!.status === 'queued';
    const claimed = await claimJobs(r.t.db, {
      workerId: 'model',
      limit: 1,
      leaseSeconds: 30,
      queues: [queueOf(job)],
      advisoryLocks: this.advisoryLocks,
    });
    if (claimable) claimInModel(m, job);
    expect(claimed.map((c) => [c.id, c.leaseToken])).toEqual(
      claimable ? [[r.ids[job], String(m.jobs[job]!.leaseToken)]] : [],
    );
    await expectAgreement(m, r);
  }
  toString = () => `claim(job ${this.sel}${this.advisoryLocks ? ', advisory' : ''})`;
}

class ClaimAll implements Cmd {
  constructor(readonly advisoryLocks: boolean) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const claimed = await claimJobs(r.t.db, {
      workerId: 'model',
      limit: MAX_JOBS * 2,
      leaseSeconds: 30,
      queues: [],
      advisoryLocks: this.advisoryLocks,
    });
    const expected: string[] = [];
    m.jobs.forEach((j, job) => {
      if (j.status !== 'queued') return;
      claimInModel(m, job);
      expected.push(`${r.ids[job]}@${j.leaseToken}`);
    });
    expect(claimed.map((c) => `${c.id}@${c.leaseToken}`).sort()).toEqual(expected.sort());
    await expectAgreement(m, r);
  }
  toString = () => `claimAll(${this.advisoryLocks ? 'advisory' : 'skip locked'})`;
}

class Complete implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.leases.length > 0;
  async run(m: Model, r: Real) {
    await fenced(
      m,
      r,
      this.sel,
      async (lease) => (await completeJobs(r.t.db, [lease])).has(lease.id),
      (job) => setStatus(m, job, 'completed'),
    );
    await expectAgreement(m, r);
  }
  toString = () => `complete(lease ${this.sel})`;
}

class Fail implements Cmd {
  constructor(
    readonly sel: number,
    readonly permanent: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.leases.length > 0;
  async run(m: Model, r: Real) {
    let outcome: JobStatus | undefined;
    await fenced(
      m,
      r,
      this.sel,
      async (lease) => {
        outcome = (await failJob(r.t.db, failure(lease, this.permanent)))?.status;
        return outcome !== undefined;
      },
      (job) => {
        const j = m.jobs[job]!;
        const final = this.permanent || j.attempts >= j.maxAttempts;
        setStatus(m, job, final ? 'failed' : 'queued');
        expect(outcome).toBe(j.status);
      },
    );
    await expectAgreement(m, r);
  }
  toString = () => `fail(lease ${this.sel}${this.permanent ? ', permanent' : ''})`;
}

class Release implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.leases.length > 0;
  async run(m: Model, r: Real) {
    await fenced(
      m,
      r,
      this.sel,
      async (lease) => (await releaseJobs(r.t.db, [lease], 'deadline')).has(lease.id),
      (job) => {
        m.jobs[job]!.status = 'queued';
        m.jobs[job]!.attempts--;
      },
    );
    await expectAgreement(m, r);
  }
  toString = () => `release(lease ${this.sel})`;
}

class Renew implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.leases.length > 0;
  async run(m: Model, r: Real) {
    await fenced(
      m,
      r,
      this.sel,
      async (lease) => (await renewLeases(r.t.db, [lease])).has(lease.id),
      () => {},
    );
    await expectAgreement(m, r);
  }
  toString = () => `renew(lease ${this.sel})`;
}

class ExpireAndReap implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.jobs.length > 0;
  async run(m: Model, r: Real) {
    const job = this.sel % m.jobs.length;
    const j = m.jobs[job]!;
    await expireLease(r.t.db, r.ids[job]!);
    const result = await requeueExpiredLeases(r.t.db, 100);
    if (j.status === 'running') {
      const exhausted = j.attempts >= j.maxAttempts;
      setStatus(m, job, exhausted ? 'failed' : 'queued');
      m.totals.recovered++;
      expect(result).toEqual({ recovered: 1, requeued: exhausted ? 0 : 1, failed: exhausted ? 1 : 0 });
    } else {
      expect(result.recovered).toBe(0);
    }
    await expectAgreement(m, r);
  }
  toString = () => `expireAndReap(job ${this.sel})`;
}

class RunbookForceRelease implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.jobs.length > 0;
  async run(m: Model, r: Real) {
    const job = this.sel % m.jobs.length;
    await r.t.db.query(RUNBOOK_FORCE_RELEASE(r.ids[job]!));
    m.jobs[job]!.status = 'queued';
    await expectAgreement(m, r);
  }
  toString = () => `runbookForceRelease(job ${this.sel})`;
}

class RunbookSafeCancel implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.jobs.length > 0;
  async run(m: Model, r: Real) {
    const job = this.sel % m.jobs.length;
    await r.t.db.query(RUNBOOK_SAFE_CANCEL(r.ids[job]!));
    setStatus(m, job, 'failed');
    await expectAgreement(m, r);
  }
  toString = () => `runbookSafeCancel(job ${this.sel})`;
}

class Cancel implements Cmd {
  constructor(readonly sel: number) {}
  check = (m: Readonly<Model>) => m.jobs.length > 0;
  async run(m: Model, r: Real) {
    const job = this.sel % m.jobs.length;
    const open = m.jobs[job]!.status === 'queued' || m.jobs[job]!.status === 'running';
    const row = await cancelJob(r.t.db, r.ids[job]!, 'model', 'test');
    expect(row !== null).toBe(open);
    if (open) setStatus(m, job, 'failed');
    await expectAgreement(m, r);
  }
  toString = () => `cancel(job ${this.sel})`;
}

const sel = fc.nat({ max: 15 });
// Claims and fenced calls weigh double: they are where the state machine can go wrong.
const commands = [
  fc.integer({ min: 1, max: 3 }).map((n) => new Enqueue(n)),
  fc.tuple(sel, fc.boolean()).map(([s, a]) => new ClaimOne(s, a)),
  fc.tuple(sel, fc.boolean()).map(([s, a]) => new ClaimOne(s, a)),
  fc.boolean().map((a) => new ClaimAll(a)),
  sel.map((s) => new Complete(s)),
  sel.map((s) => new Complete(s)),
  fc.tuple(sel, fc.boolean()).map(([s, p]) => new Fail(s, p)),
  fc.tuple(sel, fc.boolean()).map(([s, p]) => new Fail(s, p)),
  sel.map((s) => new Release(s)),
  sel.map((s) => new Renew(s)),
  sel.map((s) => new ExpireAndReap(s)),
  sel.map((s) => new RunbookForceRelease(s)),
  sel.map((s) => new RunbookSafeCancel(s)),
  sel.map((s) => new Cancel(s)),
];

describe.runIf(await postgresAvailable())('job state machine against a model', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('model');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('every command sequence, stale leases included, leaves the database equal to the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 3 }),
        fc.commands(commands, { maxCommands: 25, size: 'large' }),
        async (initial, cmds) => {
          // Prepare: start with a few jobs, so lease commands are reachable from the first step
          await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
          const model: Model = {
            jobs: [],
            leases: [],
            totals: { submitted: 0, completed: 0, failed: 0, recovered: 0 },
          };
          const real: Real = { t, ids: [] };
          for (const maxAttempts of initial) await new Enqueue(maxAttempts).run(model, real);
          await fc.asyncModelRun(() => ({ model, real }), cmds);
        },
      ),
      // 30 runs of up to 25 commands take a few seconds; a failure prints the shrunk sequence.
      { numRuns: 30 },
    );
    // The generator really reached the interesting states (claims, hence leases to go stale).
    expect(stats.held).toBeGreaterThan(10);
    expect(stats.stale).toBeGreaterThan(10);
    console.info(`fenced calls: ${stats.held} with a live lease, ${stats.stale} with a stale one`);
  });
});
