/** Fakes for the consumer parts' unit tests: no database, the statements are injected. */

import { OutcomeRecorder } from '../../functions/engine/consumer/recorder.ts';
import type { Statements } from '../../functions/engine/consumer/statements.ts';
import type { EngineLogger, RunOutcome } from '../../functions/engine/contracts.ts';
import type { Db } from '../../functions/engine/queryable.ts';
import type { ClaimedJob } from '../../functions/engine/types.ts';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  extra: Record<string, unknown>;
}

export function recordingLogger(): EngineLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (message: string, ...extra: Array<Record<string, unknown>>) =>
      lines.push({ level, message, extra: Object.assign({}, ...extra) });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function recordingObserver() {
  const ran: Array<[string, RunOutcome]> = [];
  const dbErrors: string[] = [];
  const claims: number[] = [];
  return {
    ran,
    dbErrors,
    claims,
    observer: {
      claimed: (_ms: number, n: number) => void claims.push(n),
      ran: (type: string, outcome: RunOutcome) => void ran.push([type, outcome]),
      dbError: (op: string) => void dbErrors.push(op),
    },
  };
}

export function fakeRecorder() {
  const logger = recordingLogger();
  const obs = recordingObserver();
  const recorder = new OutcomeRecorder('w1', logger, obs.observer);
  return { logger, obs, recorder };
}

let nextId = 1;
export function job(over: Partial<ClaimedJob> = {}): ClaimedJob {
  const id = String(nextId++);
  return {
    id,
    queue: 'default',
    type: 'example.echo',
    payload: {},
    attempt: 1,
    maxAttempts: 3,
    leaseToken: `t${id}`,
    leaseSeconds: 30,
    ...over,
  };
}

/** Never queried: every statement is a fake. */
export const noDb: Db = {
  query: () => Promise.reject(new Error('no database in a unit test')),
  transaction: () => Promise.reject(new Error('no database in a unit test')),
  end: async () => {},
} as unknown as Db;

/** Statements that fail the test if called; override the ones a test needs. */
export function statements(over: Partial<Statements> = {}): Statements {
  const none = (name: string) => () => Promise.reject(new Error(`unexpected statement ${name}`));
  return {
    claimJobs: none('claimJobs'),
    pausedQueues: none('pausedQueues'),
    completeAndClaim: none('completeAndClaim'),
    completeJobs: none('completeJobs'),
    failJob: none('failJob'),
    releaseJobs: none('releaseJobs'),
    renewLeases: none('renewLeases'),
    touchPresence: none('touchPresence'),
    leavePresence: none('leavePresence'),
    nextDueAt: none('nextDueAt'),
    ...over,
  } as Statements;
}

/** A value error as PostgreSQL raises it for a bad jsonb value (see isValueError). */
export function valueError(): Error {
  return Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
}
